"""`storyline extract` and `storyline info` against a real Zarr store on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import zarr

from storyline.deploy.cli import main
from storyline.store import FeatureStore, VideoNotFoundError

from .conftest import TEST_INPUT_SIZE
from .media import make_clip

# the single-process path; tests/test_ray_jobs.py covers the same command on Ray
SIZE = ["--input-size", str(TEST_INPUT_SIZE), "--quiet", "--no-ray"]


def extract(store: Path, *args: str) -> int:
    return main(["extract", "--store", str(store), *SIZE, *args])


def info(store: Path, capsys: pytest.CaptureFixture, *args: str) -> dict:
    capsys.readouterr()
    assert main(["info", "--store", str(store), *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_store_round_trip_with_manifest_tags_and_frames(tmp_path, clip, other_clip, capsys):
    manifest = tmp_path / "movies.csv"
    manifest.write_text(
        "video,id,genres,keywords,split\n"
        f"{clip[0]},first,drama|romance,love,train\n"
        f"{other_clip[0]},second,,,test\n"
    )
    store_path = tmp_path / "features.zarr"
    assert extract(store_path, "--manifest", str(manifest), "--frames") == 0

    store = FeatureStore(str(store_path), mode="r")
    assert store.video_ids(encoder="random") == ["first", "second"]
    shots = store.shots("first")
    assert shots.dtype == np.int64 and shots[1:, 0].tolist() == pytest.approx(clip[1], abs=1)
    features = store.features("first", "random")
    assert features.dtype == np.float16 and features.shape == (len(shots), 1024)
    frames = store.frames("first")
    assert frames.dtype == np.uint8
    assert frames.shape == (len(shots), 3, TEST_INPUT_SIZE, TEST_INPUT_SIZE, 3)
    attrs = store.attrs("first")
    assert attrs["tags"] == {"genres": ["drama", "romance"], "keywords": ["love"], "split": "train"}
    assert attrs["frame_count"] == clip[2] and attrs["fps"] == pytest.approx(24)
    assert attrs["width"] == 96 and attrs["height"] == 64
    assert attrs["encoder"]["name"] == "random" and attrs["status"] == "complete"

    # plain zarr reads the documented layout, no storyline needed
    root = zarr.open_group(str(store_path), mode="r")
    assert root["videos/second/features/random"].shape == (len(other_clip[1]) + 1, 1024)
    assert root["videos/second"].attrs["status"] == "complete"

    summary = info(store_path, capsys)
    assert summary["counts"] == {"complete": 2}
    assert summary["shots"] == len(shots) + len(other_clip[1]) + 1
    one = info(store_path, capsys, "first")
    assert one["arrays"]["features/random"] == {"shape": [len(shots), 1024], "dtype": "float16"}


def test_rerun_skips_complete_videos_and_leaves_them_untouched(tmp_path, clip, capsys):
    store_path = tmp_path / "s.zarr"
    assert extract(store_path, str(clip[0])) == 0
    chunk_files = sorted((store_path / "videos").rglob("c/*"))
    before = {p: p.stat().st_mtime_ns for p in chunk_files}
    capsys.readouterr()
    assert extract(store_path, str(clip[0])) == 0
    captured = capsys.readouterr()
    assert "already complete" in captured.err and "1 skipped" in captured.out
    assert {p: p.stat().st_mtime_ns for p in chunk_files} == before


def test_incomplete_video_is_redone(tmp_path, clip):
    store_path = tmp_path / "s.zarr"
    assert extract(store_path, str(clip[0])) == 0
    store = FeatureStore(str(store_path))
    (video_id,) = store.video_ids()
    reference = store.features(video_id, "random")
    group = store.root[f"videos/{video_id}"]
    group.attrs["status"] = "writing"  # as if the writer died before its completion mark
    del group["features/random"]
    with pytest.raises(VideoNotFoundError):  # a listing never yields a partial video's data
        FeatureStore(str(store_path), mode="r").features(video_id, "random")
    store.reindex()  # a writer that died before the mark never indexed it: as it would be
    assert FeatureStore(str(store_path), mode="r").video_ids() == []
    assert extract(store_path, str(clip[0])) == 0
    np.testing.assert_array_equal(
        FeatureStore(str(store_path), mode="r").features(video_id, "random"), reference
    )


def test_encoder_id_clash_is_refused(tmp_path, clip, capsys):
    store_path = tmp_path / "s.zarr"
    assert extract(store_path, str(clip[0])) == 0
    capsys.readouterr()
    # another random encoder (other input size, so other preprocessing) under the same name
    code = main(
        [
            "extract",
            "--store",
            str(store_path),
            "--input-size",
            "96",
            "--quiet",
            "--no-ray",
            str(clip[0]),
        ]
    )
    assert code == 2
    assert "already holds features of encoder" in capsys.readouterr().err


def _no_video_stream(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for _ in range(10):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _truncated(path: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    make_clip(whole, [60, 60], seed=3)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_INPUTS = {
    "missing": (lambda p, t: None, "file not found"),
    "zero-byte": (lambda p, t: p.write_bytes(b""), "file is empty"),
    "text": (lambda p, t: p.write_text("not a video at all\n" * 20), "not a readable video"),
    "truncated": (_truncated, "truncated"),
    "no-video-stream": (lambda p, t: _no_video_stream(p), "no video stream"),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_damages_nothing(tmp_path, clip, other_clip, kind, capsys):
    make, reason = BAD_INPUTS[kind]
    bad = tmp_path / f"{kind}.mp4"
    make(bad, tmp_path)
    store_path = tmp_path / "s.zarr"
    assert extract(store_path, str(clip[0])) == 0
    store = FeatureStore(str(store_path), mode="r")
    (first_id,) = store.video_ids()
    before = store.features(first_id, "random")

    capsys.readouterr()
    assert extract(store_path, str(bad), str(other_clip[0]), str(clip[0])) == 1
    out = capsys.readouterr().out
    failed_line = next(line for line in out.splitlines() if line.startswith("failed"))
    assert reason in failed_line and "\n" not in failed_line

    summary = info(store_path, capsys)
    assert summary["counts"] == {"complete": 2, "failed": 1}
    (failed,) = [v for v in summary["videos"] if v["status"] == "failed"]
    assert reason in failed["error"]
    np.testing.assert_array_equal(store.features(first_id, "random"), before)


def test_console_script_runs(tmp_path, clip):
    """The installed `storyline` entry point, in a fresh interpreter."""
    exe = Path(sys.executable).with_name("storyline")
    store_path = tmp_path / "s.zarr"
    done = subprocess.run(
        [str(exe), "extract", "--store", str(store_path), *SIZE, str(clip[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "1 complete" in done.stdout
    shown = subprocess.run(
        [str(exe), "info", "--store", str(store_path)], capture_output=True, text=True
    )
    assert json.loads(shown.stdout)["counts"] == {"complete": 1}
