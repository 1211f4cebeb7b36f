"""PyAV as the fallback decoder, for the codecs decord's bundled FFmpeg lacks (AV1).

decord 0.6 ships an FFmpeg without an AV1 decoder; PyAV's wheels carry libdav1d. Only
:mod:`.decode` calls this module, through the same batch iterator as decord: frames come
in decoded order (the numbering of decord and of our cut lists), resized by FFmpeg's
scaler to the size decord would have produced, turned as the container's display
rotation asks (decord does the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np


class PyAVError(Exception):
    """PyAV could not open or decode the file either; the caller words the message."""


@dataclass(frozen=True)
class PyAVInfo:
    fps: float
    frame_count: int  # the container's count, or duration x fps where it has none
    width: int
    height: int


def _open_video(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise PyAVError(str(exc)) from exc
    if not container.streams.video:
        container.close()
        raise PyAVError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads, as decord's FFmpeg uses
    return container, stream


def probe_pyav(path: str) -> PyAVInfo:
    """Frame rate, frame count and size, checked by decoding the first frame."""
    container, stream = _open_video(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        try:
            first = next(container.decode(stream))
        except (av.FFmpegError, StopIteration) as exc:
            raise PyAVError(f"first frame: {exc or 'no frames'}") from exc
        frame_count = stream.frames
        if frame_count <= 0:  # WebM/Matroska and raw streams carry no count
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / av.time_base
            frame_count = max(1, round(seconds * fps))
        width, height = first.width, first.height
        if _quarter_turns(first) % 2:
            width, height = height, width
        return PyAVInfo(fps, int(frame_count), width, height)


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns the display matrix asks for (np.rot90's k)."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def iter_pyav_batches(
    path: str, *, width: int, height: int, batch_size: int
) -> Iterator[np.ndarray]:
    """(B, height, width, 3) RGB uint8 batches of every decoded frame, in order.

    Decoding and scaling run in FFmpeg without the GIL, so a background thread driving
    this generator overlaps the caller's work as decord's does.
    """
    container, stream = _open_video(path)
    with container:
        batch = np.empty((batch_size, height, width, 3), np.uint8)
        filled = 0
        index = 0
        try:
            for frame in container.decode(stream):
                turns = _quarter_turns(frame)
                if turns % 2:  # scale before turning: the coded frame is on its side
                    rgb = frame.to_ndarray(width=height, height=width, format="rgb24")
                else:
                    rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
                batch[filled] = np.rot90(rgb, turns) if turns else rgb
                filled += 1
                index += 1
                if filled == batch_size:
                    yield batch
                    batch = np.empty_like(batch)
                    filled = 0
        except av.FFmpegError as exc:
            raise PyAVError(f"decoding stopped at frame {index}: {exc}") from exc
        if filled:
            yield batch[:filled]
