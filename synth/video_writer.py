"""Encode NumPy frames into a real video file (H.264 in MP4 by default) with PyAV.

Synthetic movies (``storyline synth``), the demo and the tests are made with this, so every
one of them goes through a real decoder, with real compression artefacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 24,
    codec: str = "libx264",
    crf: int = 20,
    gop: int = 48,
) -> int:
    """Write RGB uint8 frames (H x W x 3, even H and W) to ``path``; return the frame count.

    ``gop`` keeps keyframes regular rather than at cuts, as in real footage, so a decoder
    cannot find the cuts from the bitstream alone.
    """
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be H x W x 3 uint8, got {frame.dtype} {frame.shape}")
            if stream is None:
                height, width = frame.shape[:2]
                if height % 2 or width % 2:
                    raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "g": str(gop), "sc_threshold": "0"}
            packet_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(packet_frame))
            count += 1
        if stream is None:
            raise ValueError("no frames to write")
        container.mux(stream.encode(None))
    return count
