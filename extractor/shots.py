"""Shot boundaries: the one adapter to PySceneDetect, and the bounded per-shot frame buffer.

scenedetect 0.7's ``process_frame`` takes a ``FrameTimecode`` and a BGR frame, and its
detectors may report a cut some frames after it happened (Adaptive's look-ahead window,
Content's merge filter); every such detail stays in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

DetectorKind = Literal["adaptive", "content", "transnetv2"]  # transnetv2: extractor/transnet.py
DETECTORS: tuple[DetectorKind, ...] = ("adaptive", "content", "transnetv2")


class ShotDetector:
    """Feeds small BGR frames to a scenedetect detector; yields cut frame numbers.

    A cut ``c`` means a new shot starts at frame ``c``. ``lag`` is how many frames after
    a cut the detector may report it: the frame buffer keeps at least that many.
    """

    def __init__(
        self,
        kind: DetectorKind,
        fps: float,
        *,
        threshold: float | None = None,
        min_shot_frames: int = 4,
        luma_only: bool | None = None,
    ) -> None:
        # luma_only compares brightness alone. Hue and saturation of near-black pixels are
        # noise, so in HSV a fade from black looks like a cut; None = on for adaptive (all
        # real clips F1 1.0, no extra cost), off for content (loses Sintel's cuts without
        # colour). Measured in bench/bench_detectors.py; README, "Choosing the detector".
        if luma_only is None:
            luma_only = kind == "adaptive"
        if kind == "adaptive":
            options = {} if threshold is None else {"adaptive_threshold": threshold}
            self._detector = AdaptiveDetector(
                min_scene_len=min_shot_frames, luma_only=luma_only, **options
            )
        elif kind == "content":
            options = {} if threshold is None else {"threshold": threshold}
            self._detector = ContentDetector(
                min_scene_len=min_shot_frames, luma_only=luma_only, **options
            )
        else:
            raise ValueError(f"not a scenedetect detector: {kind!r}; choose adaptive or content")
        self.fps = fps
        self.lag = self._detector.event_buffer_length + min_shot_frames + 1

    def push(self, index: int, frame_bgr: np.ndarray) -> list[int]:
        """Feed frame ``index`` (frames must come in order); return cuts found so far."""
        cuts = self._detector.process_frame(FrameTimecode(index, self.fps), frame_bgr)
        return [c.frame_num for c in cuts]

    def finish(self, frame_count: int) -> list[int]:
        """Cuts the detector still holds once the last frame has been pushed."""
        cuts = self._detector.post_process(FrameTimecode(frame_count, self.fps))
        return [c.frame_num for c in cuts]


def detection_frames(batch_rgb: np.ndarray, step: int) -> np.ndarray:
    """Shrink a decoded RGB batch by pixel striding and flip it to BGR, in one copy.

    Striding is the cheapest resize there is; the detector compares frame-to-frame HSV
    means, which a 4x smaller frame preserves.
    """
    return np.ascontiguousarray(batch_rgb[:, ::step, ::step, ::-1])


def cuts_to_shots(cuts: Sequence[int], frame_count: int) -> np.ndarray:
    """(n_shots, 2) [start, end) ranges tiling ``[0, frame_count)`` exactly."""
    inner = sorted({int(c) for c in cuts if 0 < c < frame_count})
    bounds = [0, *inner, frame_count]
    return np.array(list(zip(bounds[:-1], bounds[1:], strict=True)), dtype=np.int64).reshape(-1, 2)


def sample_positions(start: int, end: int, m: int = 3) -> np.ndarray:
    """Frame numbers at the centres of the m equal parts of [start, end) (paper: thirds)."""
    length = end - start
    centres = start + (2 * np.arange(m) + 1) * length / (2 * m)
    return np.clip(np.floor(centres).astype(np.int64), start, end - 1)


class ShotBuffer:
    """Frames of the shot in progress, bounded: memory never grows with shot length.

    Frames older than the newest ``tail`` (the detector's reporting lag, kept whole so a
    late-reported cut can hand them to the next shot) are kept on a grid of stride 1, 2,
    4...: the stride doubles whenever the buffer would pass ``capacity``, so the kept frames
    stay evenly spread over the shot, at most ``2 * length / (capacity - tail)`` apart.
    """

    def __init__(self, *, capacity: int = 48, tail: int = 8) -> None:
        if capacity <= tail:
            raise ValueError(f"capacity ({capacity}) must exceed tail ({tail})")
        self.capacity, self.tail = capacity, tail
        self._indices: list[int] = []
        self._frames: list[np.ndarray] = []
        self._start = 0
        self._stride = 1

    def __len__(self) -> int:
        return len(self._indices)

    def add(self, index: int, frame: np.ndarray) -> None:
        self._indices.append(index)
        self._frames.append(frame)
        leaving = len(self._indices) - self.tail - 1  # the frame that just left the tail
        if leaving >= 0 and not self._on_grid(self._indices[leaving]):
            del self._indices[leaving], self._frames[leaving]
        if len(self._indices) > self.capacity:
            self._stride *= 2
            cut = len(self._indices) - self.tail
            keep = [i for i in range(cut) if self._on_grid(self._indices[i])]
            keep += range(cut, len(self._indices))
            self._indices = [self._indices[i] for i in keep]
            self._frames = [self._frames[i] for i in keep]

    def _on_grid(self, index: int) -> bool:
        return (index - self._start) % self._stride == 0

    def close(self, cut: int, m: int) -> np.ndarray:
        """End the shot at ``cut``: return its m sampled frames, keep frames >= cut."""
        split = next((i for i, idx in enumerate(self._indices) if idx >= cut), len(self))
        indices, frames = self._indices[:split], self._frames[:split]
        if not indices:
            raise RuntimeError(f"no buffered frame for the shot ending at {cut}")
        targets = sample_positions(self._start, cut, m)
        index_array = np.asarray(indices)
        picks = [int(np.abs(index_array - t).argmin()) for t in targets]
        sampled = np.stack([frames[p] for p in picks])
        self._indices, self._frames = self._indices[split:], self._frames[split:]
        self._start, self._stride = cut, 1
        return sampled
