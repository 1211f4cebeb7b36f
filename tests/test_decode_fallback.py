"""AV1 and other codecs decord cannot open: PyAV decodes them through the same iterator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storyline.deploy.cli import main
from storyline.extractor.decode import VideoError, iter_frame_batches, probe
from storyline.extractor.pipeline import extract_video
from storyline.store import FeatureStore

from .conftest import TEST_INPUT_SIZE
from .media import av1_encoder, make_clip

AV1 = av1_encoder()
needs_av1 = pytest.mark.skipif(AV1 is None, reason="PyAV has no AV1 encoder here")
LENGTHS = [30, 4, 25, 40, 12]


@pytest.fixture(scope="module")
def av1_clip(clip_dir: Path) -> tuple[Path, list[int], int]:
    path = clip_dir / "clip_av1.mp4"
    return path, make_clip(path, LENGTHS, seed=1, codec=AV1), sum(LENGTHS)


def _frames(path: Path, decoder: str, short_side: int = 64) -> np.ndarray:
    meta = probe(str(path), decoder=decoder)
    return np.concatenate(list(iter_frame_batches(meta, short_side=short_side, batch_size=7)))


@needs_av1
def test_av1_is_opened_by_pyav_where_decord_cannot(av1_clip):
    path, _, frame_count = av1_clip
    with pytest.raises(VideoError, match="not a readable video"):
        probe(str(path), decoder="decord")
    meta = probe(str(path))
    assert meta.decoder == "pyav"
    assert (meta.width, meta.height, meta.frame_count) == (96, 64, frame_count)
    assert meta.fps == pytest.approx(24)
    assert meta.to_attrs()["decoder"] == "pyav"


@needs_av1
def test_av1_cuts_are_found_at_their_frames(av1_clip, encoder):
    path, cuts, frame_count = av1_clip
    result = extract_video(str(path), encoder)
    assert result.meta.decoder == "pyav" and result.meta.frame_count == frame_count
    found = result.shots[1:, 0].tolist()
    hits = sum(any(abs(f - c) <= 1 for f in found) for c in cuts)
    precision, recall = hits / max(len(found), 1), hits / len(cuts)
    assert (precision, recall) == (1.0, 1.0), f"found {found}, expected {cuts}"
    assert result.shots[0, 0] == 0 and result.shots[-1, 1] == frame_count
    assert np.isfinite(result.features).all()


def test_pyav_numbers_and_sizes_frames_as_decord_does(clip):
    """Same count, same order, same reduced size: cut lists mean the same frames."""
    path, _, frame_count = clip
    by_decord, by_pyav = _frames(path, "decord"), _frames(path, "pyav")
    assert by_decord.shape == by_pyav.shape == (frame_count, 64, 96, 3)
    difference = np.abs(by_decord.astype(np.int16) - by_pyav).mean(axis=(1, 2, 3))
    assert difference.max() < 4, "same frame, same scaler: only rounding differs"
    # each PyAV frame is nearest to the decord frame of the same number
    flat_d = by_decord.reshape(frame_count, -1).astype(np.float32)
    flat_p = by_pyav.reshape(frame_count, -1).astype(np.float32)
    nearest = [int(np.abs(flat_d - row).mean(axis=1).argmin()) for row in flat_p]
    same_shot = [abs(n - i) <= 1 or difference[i] < 1 for i, n in enumerate(nearest)]
    assert all(same_shot)


def test_pyav_errors_name_the_file(tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="not a readable video"):
        probe(str(bad))
    with pytest.raises(VideoError, match="not a readable video"):
        probe(str(bad), decoder="pyav")


@needs_av1
def test_av1_extracts_into_the_store_with_its_decoder_recorded(tmp_path, av1_clip, clip):
    store_path = tmp_path / "features.zarr"
    args = ["--input-size", str(TEST_INPUT_SIZE), "--quiet", "--no-ray"]
    assert main(["extract", "--store", str(store_path), *args, str(av1_clip[0]), str(clip[0])]) == 0
    store = FeatureStore(str(store_path), mode="r")
    by_source = {store.attrs(v)["source"]: store.attrs(v) for v in store.video_ids()}
    av1_attrs, h264_attrs = by_source[str(av1_clip[0])], by_source[str(clip[0])]
    assert av1_attrs["decoder"] == "pyav" and h264_attrs["decoder"] == "decord"
    assert av1_attrs["frame_count"] == av1_clip[2] and av1_attrs["status"] == "complete"
