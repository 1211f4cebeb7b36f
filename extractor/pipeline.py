"""One video, one decode pass: frames -> shots -> sampled frames -> encoder -> shot features.

Plain functions over arrays; Ray actors and the single-process runner both call
:func:`extract_video`. Memory is bounded by the decode prefetch, the shot buffer and the
encoder batch, never by the length of a shot or of the video.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .decode import VideoMeta, iter_frame_batches, probe
from .encoder import FEATURE_DIM, Encoder
from .shots import DetectorKind, ShotBuffer, ShotDetector, detection_frames
from .transnet import TransNetDetector

FramesSink = Callable[[np.ndarray], None]
ProgressSink = Callable[[int], None]
MetaSink = Callable[[VideoMeta], None]


@dataclass(frozen=True)
class ExtractionSettings:
    """How shots are found and sampled; saved with every video it produced."""

    detector: DetectorKind = "adaptive"  # adaptive, content or transnetv2: README, detectors
    threshold: float | None = None  # detector threshold; None = scenedetect's default
    min_shot_frames: int = 4  # shortest shot the detector may report (trailers cut fast)
    frames_per_shot: int = 3  # m: frames sampled per shot, centres of its m equal parts
    detect_short_side: int = 64  # detection frames' short side (strided from decode size)
    luma_only: bool | None = None  # detect on brightness only; None: adaptive yes, content no
    decode_batch: int = 32  # frames per decord call
    encode_batch: int = 48  # frames per encoder forward pass
    buffer_frames: int = 48  # frames kept of the shot in progress
    store_frames: bool = False  # also hand sampled frames to the store (--frames)

    def to_attrs(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class VideoResult:
    """Everything one video yields for the store."""

    meta: VideoMeta
    shots: np.ndarray  # (n_shots, 2) int64 [start, end)
    features: np.ndarray  # (n_shots, 1024) float32, mean of the shot's frame features


def center_crop(batch: np.ndarray, size: int) -> np.ndarray:
    """Square centre crops (B, size, size, 3) of frames whose short side is ``size``."""
    height, width = batch.shape[1:3]
    top, left = (height - size) // 2, (width - size) // 2
    return batch[:, top : top + size, left : left + size]


class _ShotEncoder:
    """Queues each closed shot's sampled frames and encodes them in batches."""

    def __init__(self, encoder: Encoder, batch_frames: int, on_frames: FramesSink | None):
        self.encoder, self.batch_frames, self.on_frames = encoder, batch_frames, on_frames
        self.pending: list[np.ndarray] = []  # (m, S, S, 3) per shot
        self.features: list[np.ndarray] = []  # (k, 1024) per flush

    def add(self, sampled: np.ndarray) -> None:
        self.pending.append(sampled)
        if len(self.pending) * len(sampled) >= self.batch_frames:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        shots = np.stack(self.pending)  # k x m x S x S x 3
        self.pending = []
        if self.on_frames is not None:
            self.on_frames(shots)
        k, m = shots.shape[:2]
        frame_features = self.encoder.encode(shots.reshape(k * m, *shots.shape[2:]))
        self.features.append(frame_features.reshape(k, m, -1).mean(axis=1))  # paper eq. 1

    def result(self) -> np.ndarray:
        self.flush()
        return np.concatenate(self.features) if self.features else np.zeros((0, FEATURE_DIM))


def extract_video(
    source: str,
    encoder: Encoder,
    settings: ExtractionSettings = ExtractionSettings(),
    *,
    known_shots: np.ndarray | None = None,
    on_frames: FramesSink | None = None,
    on_progress: ProgressSink | None = None,
    on_meta: MetaSink | None = None,
) -> VideoResult:
    """Decode ``source`` once and return its shots and per-shot features.

    ``known_shots`` (a video already in the store for another encoder) replaces detection,
    so every encoder of a store shares the same shots. ``on_frames`` receives the sampled
    frames (k, m, S, S, 3) uint8 in shot order, as shots close; ``on_progress`` the number
    of frames decoded since its last call; ``on_meta`` the probed metadata (frame count)
    before decoding starts, so progress can be told as a fraction.
    """
    meta = probe(source)
    if on_meta is not None:
        on_meta(meta)
    size = encoder.input_size
    m = settings.frames_per_shot
    detector: ShotDetector | TransNetDetector | None = None
    tail = 1
    if known_shots is None:
        if settings.detector == "transnetv2":
            detector = TransNetDetector(meta.fps, device=encoder.device)
            tail = detector.lag + settings.decode_batch  # it reports after whole batches
        else:
            detector = ShotDetector(
                settings.detector,
                meta.fps,
                threshold=settings.threshold,
                min_shot_frames=settings.min_shot_frames,
                luma_only=settings.luma_only,
            )
            tail = detector.lag
        known_cuts: list[int] = []
    else:
        known_cuts = [int(s) for s in known_shots[1:, 0]][::-1]  # popped from the end
    buffer = ShotBuffer(capacity=max(settings.buffer_frames, tail + m + 1), tail=tail)
    encoded = _ShotEncoder(encoder, settings.encode_batch, on_frames)
    bounds: list[tuple[int, int]] = []

    def close(cut: int) -> None:
        start = bounds[-1][1] if bounds else 0
        if cut <= start:  # a detector repeating itself; shots never have zero length
            return
        encoded.add(buffer.close(cut, m))
        bounds.append((start, cut))

    index = 0
    for batch in iter_frame_batches(meta, short_side=size, batch_size=settings.decode_batch):
        crops = center_crop(batch, size)
        small = None
        if isinstance(detector, ShotDetector):
            small = detection_frames(batch, _detect_step(batch, settings))
        first = index
        for j in range(len(batch)):
            while known_cuts and known_cuts[-1] == index:
                close(known_cuts.pop())
            buffer.add(index, crops[j].copy())  # copy: a view would pin the whole batch
            if small is not None:
                for cut in detector.push(index, small[j]):
                    close(cut)
            index += 1
        if isinstance(detector, TransNetDetector):  # windows of 100 frames: whole batches
            for cut in detector.push_batch(first, batch):
                close(cut)
        if on_progress is not None:
            on_progress(len(batch))
    if detector is not None:
        for cut in detector.finish(index):
            close(cut)
    close(index)
    if index != meta.frame_count:  # PyAV: the container's count was an estimate
        meta = dataclasses.replace(meta, frame_count=index)
    shots = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    return VideoResult(meta=meta, shots=shots, features=encoded.result())


def _detect_step(batch: np.ndarray, settings: ExtractionSettings) -> int:
    return max(1, round(min(batch.shape[1:3]) / settings.detect_short_side))
