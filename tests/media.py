"""Test media with known answers: real H.264 (or AV1) clips whose cuts we chose."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from storyline.synth.video_writer import write_video


def shot_frames(
    index: int, length: int, *, size: tuple[int, int] = (96, 64), seed: int = 0
) -> list[np.ndarray]:
    """Frames of one synthetic shot: its own colour and a moving square, mild noise."""
    width, height = size
    rng = np.random.default_rng(seed * 1000 + index)
    base = rng.integers(30, 226, size=3)
    accent = 255 - base
    frames = []
    for t in range(length):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = base
        x = (index * 17 + 2 * t) % (width - 16)
        y = (index * 11 + t) % (height - 16)
        frame[y : y + 16, x : x + 16] = accent
        noise = rng.integers(-3, 4, size=frame.shape)
        frames.append(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames


def make_clip(
    path: Path,
    shot_lengths: list[int],
    *,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
    codec: str = "libx264",
) -> list[int]:
    """Encode a clip whose shots have the given lengths; return its cuts (first frames)."""
    frames = [
        f for i, n in enumerate(shot_lengths) for f in shot_frames(i, n, size=size, seed=seed)
    ]
    write_video(path, frames, fps=24, codec=codec)
    return list(np.cumsum(shot_lengths)[:-1])


AV1_ENCODERS = ("libaom-av1", "libsvtav1", "librav1e")  # whichever PyAV's FFmpeg has


def av1_encoder() -> str | None:
    """The first AV1 encoder this PyAV build offers, or None (tests then skip)."""
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration otherwise
    for name in AV1_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    return None
