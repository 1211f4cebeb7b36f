"""Score detected cuts against a ground-truth cut list (precision, recall, F1).

Used by the detector study (bench/bench_detectors.py) and the real-clip tests, so both
count the same way: a found cut within ``tolerance`` frames of a hard cut matches it
(each hard cut at most once); a found cut within ``ignore_tolerance`` frames of an
``ignore`` frame (a fade some detectors also report; a fade spans frames, and detectors
fire at different frames of it) counts neither for nor against the detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CutScore:
    hits: int
    spurious: int
    missed: int

    @property
    def precision(self) -> float:
        found = self.hits + self.spurious
        return self.hits / found if found else 1.0

    @property
    def recall(self) -> float:
        truth = self.hits + self.missed
        return self.hits / truth if truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_cuts(
    found: Sequence[int],
    hard_cuts: Sequence[int],
    *,
    ignore: Sequence[int] = (),
    tolerance: int = 1,
    ignore_tolerance: int = 2,
) -> CutScore:
    """Match ``found`` to ``hard_cuts`` one-to-one within ``tolerance`` frames."""
    unmatched = sorted(int(c) for c in hard_cuts)
    hits = spurious = 0
    for cut in sorted(int(c) for c in found):
        near = [t for t in unmatched if abs(t - cut) <= tolerance]
        if near:
            unmatched.remove(min(near, key=lambda t: abs(t - cut)))
            hits += 1
        elif not any(abs(i - cut) <= ignore_tolerance for i in ignore):
            spurious += 1
    return CutScore(hits=hits, spurious=spurious, missed=len(unmatched))
