"""Multi-label ranking metrics of the paper's tag experiments: recall@k and MAP."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def recall_at_k(scores: np.ndarray, labels: np.ndarray, k: int = 3) -> float:
    """Mean over videos with a label of |top-k ∩ true| / |true|."""
    has = labels.sum(1) > 0
    if not has.any():
        return float("nan")
    top = np.argsort(-scores[has], axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(labels[has], top, axis=1).sum(1)
    return float(np.mean(hits / labels[has].sum(1)))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes with a positive of the average precision of ranking videos."""
    aps = []
    for c in range(labels.shape[1]):
        positives = labels[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision[hits].mean()))
    return float(np.mean(aps)) if aps else float("nan")


def chance_map(labels: np.ndarray, *, draws: int = 200, seed: int = 0) -> float:
    """Expected MAP of random scores on these labels (about the mean class frequency,
    higher for small sets), estimated over seeded random rankings."""
    rng = np.random.default_rng(seed)
    if not (labels > 0).any():
        return float("nan")
    return float(
        np.mean([mean_average_precision(rng.random(labels.shape), labels) for _ in range(draws)])
    )


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    draws: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``n`` items (test questions or
    videos) resampled with replacement: how far the figure would move on another test set
    of the same size. Seeded, so a report is reproducible."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(draws)])
    tail = 50 * (1 - level)
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)
