"""The learning-rate schedule shared by the small trainers (temporal, tags, QA)."""

from __future__ import annotations

import math
from typing import Protocol


class Schedule(Protocol):
    steps: int  # optimizer steps in total
    lr: float  # peak learning rate
    min_lr: float  # learning rate at the end of the decay
    warmup: int  # steps of linear warm-up


def lr_at(step: int, config: Schedule) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)
