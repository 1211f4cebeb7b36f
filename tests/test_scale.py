"""What makes storyline usable at scale: the store's index, light commands, flat memory.

Real stores on disk, real encoded videos, the real `storyline` command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from storyline.deploy.cli import COMMAND_MODULES, main
from storyline.extractor.commands import wants_ray
from storyline.extractor.manifest import video_id_for
from storyline.extractor.pipeline import ExtractionSettings, extract_video
from storyline.store import FeatureStore
from storyline.store.index import IndexWriter

from .conftest import TEST_INPUT_SIZE
from .media import make_clip

EXTRACT = ["--input-size", str(TEST_INPUT_SIZE), "--quiet", "--no-ray"]


def _write(store: FeatureStore, vid: str, encoder: str = "random", n: int = 2) -> None:
    shots = np.stack([np.arange(n) * 5, np.arange(n) * 5 + 5], axis=1)
    store.begin_video(vid, attrs={"source": f"{vid}.mp4"}).finish(
        shots=shots,
        features=np.ones((n, 1024)),
        encoder_name=encoder,
        encoder_id=f"id-{encoder}",
        attrs={"source": f"{vid}.mp4"},
    )


def _no_walking(monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(self):
        raise AssertionError("listed the store by reading every video")

    monkeypatch.setattr(FeatureStore, "iter_videos", walk)


def test_readers_list_complete_videos_from_the_index(tmp_path, clip, other_clip, monkeypatch):
    store_path = tmp_path / "s.zarr"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    code = main(["extract", "--store", str(store_path), *EXTRACT, str(clip[0]), str(other_clip[0])])
    assert code == 0
    assert main(["extract", "--store", str(store_path), *EXTRACT, str(bad)]) == 1
    scanned = FeatureStore(str(store_path), mode="r").video_ids()
    _no_walking(monkeypatch)
    store = FeatureStore(str(store_path), mode="r")
    assert store.video_ids() == scanned and len(scanned) == 2
    assert store.video_ids(encoder="random") == scanned
    assert store.video_ids(encoder="other") == []
    failed = store.index()["failed"]
    assert list(failed) == [video_id_for(str(bad))]
    assert "not a readable video" in failed[video_id_for(str(bad))]


def test_index_follows_re_extraction_and_never_lists_an_unfinished_video(tmp_path):
    store = FeatureStore(str(tmp_path / "s.zarr"))
    writer = IndexWriter(store)
    _write(store, "a")
    writer.complete("a", n_shots=2, encoder="random", source="a.mp4")
    writer.flush(force=True)
    assert store.video_ids() == ["a"]
    # a second encoder on a complete video: listed for it only once its features are done
    _write(store, "a", encoder="other")  # a direct write keeps an existing index current
    assert store.video_ids(encoder="other") == ["a"] and store.video_ids() == ["a"]
    # a video being written is in the store but not in the index
    store.begin_video("b", attrs={"source": "b.mp4"})
    assert store.video_ids() == ["a"]
    # a failure never replaces a complete video, in the store or in the index
    store.mark_failed("a", source="a.mp4", error="file not found")
    assert store.video_ids() == ["a"] and store.index()["failed"] == {}
    # another writer's entries survive a flush (it re-reads before it writes)
    late = IndexWriter(store)
    _write(store, "c")
    late.complete("c", n_shots=2, encoder="random", source="c.mp4")
    stale = IndexWriter(store)
    stale.failed("b", "decoding stopped")
    late.flush(force=True)
    stale.flush(force=True)
    assert store.video_ids() == ["a", "c"] and set(store.index()["failed"]) == {"b"}
    # rebuilt from the videos, the index says the same
    before = store.index()
    store.reindex()
    assert store.index()["videos"] == before["videos"]


def test_store_without_index_is_walked_and_then_indexed_by_the_next_writer(tmp_path):
    store = FeatureStore(str(tmp_path / "s.zarr"))
    for vid in ("x", "y"):
        _write(store, vid)  # no index yet: direct writes do not create one
    assert store.index() is None and store.video_ids() == ["x", "y"]
    writer = IndexWriter(store)
    _write(store, "z")
    writer.complete("z", n_shots=2, encoder="random", source="z.mp4")
    writer.flush(force=True)  # the first index starts from what the store holds
    assert sorted(store.index()["videos"]) == ["x", "y", "z"]


def test_info_reads_the_index_and_loads_neither_torch_nor_ray(tmp_path):
    store = FeatureStore(str(tmp_path / "s.zarr"))
    writer = IndexWriter(store)
    for vid in ("a", "b"):
        _write(store, vid)
        writer.complete(vid, n_shots=2, encoder="random", source=f"{vid}.mp4")
    writer.flush(force=True)
    probe = (
        "import json, sys; from storyline.deploy.cli import main; "
        f"code = main(['info', '--store', {str(store.url)!r}]); "
        "print(json.dumps({'torch': 'torch' in sys.modules, 'ray': 'ray' in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"torch": False, "ray": False}
    info = json.loads(done.stdout[: done.stdout.rindex("}\n{") + 1])  # info's JSON, then ours
    assert info["index"] is True and info["counts"] == {"complete": 2} and info["shots"] == 4


def test_every_command_is_in_the_table_of_its_module():
    for module, names in COMMAND_MODULES.items():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        assert tuple(sub.choices) == names, module


def test_memory_stays_flat_in_video_length(tmp_path, encoder):
    """Five times the frames must not take more memory: frames are decoded in batches and
    a long shot is decimated in a bounded buffer (what grows is 4 kB of features per shot).
    NumPy's allocations are traced; decord's frames are copied into NumPy arrays."""
    peaks = []
    for length in (300, 1500):
        path = tmp_path / f"v{length}.mp4"
        make_clip(path, [length] * 3, size=(64, 48), seed=3)
        tracemalloc.start()
        result = extract_video(str(path), encoder, ExtractionSettings())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.meta.frame_count == 3 * length
    print(f"peak traced memory, 900 vs 4500 frames: {peaks}")
    assert peaks[1] < 1.3 * peaks[0], f"peak traced memory {peaks} grew with video length"


def test_rerun_on_ray_path_says_what_it_skipped_and_starts_nothing(tmp_path, clip, capsys):
    store_path = tmp_path / "s.zarr"
    assert main(["extract", "--store", str(store_path), *EXTRACT, str(clip[0])]) == 0
    capsys.readouterr()
    import ray

    ray_before = ray.is_initialized()  # other tests of this process may have started one
    argv = ["extract", "--store", str(store_path), *EXTRACT[:-1], "--job-id", "again"]
    assert main([*argv, str(clip[0])]) == 0  # --job-id: the Ray path, with a job record
    captured = capsys.readouterr()
    assert "skipping 1 of 1 videos" in captured.err
    assert "1 skipped as already complete" in captured.out and "on 0 workers" in captured.out
    assert ray.is_initialized() == ray_before  # nothing left to do: Ray was not started
    from storyline.store.jobs import read_job

    record = read_job(str(store_path), "again")
    assert record["state"] == "succeeded" and record["skipped"] == 1
    assert record["counts"]["complete"] == 1


def test_ray_starts_only_when_it_pays(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    args = argparse.Namespace(
        no_ray=False, address=None, job_id=None, retry_failed=False, workers=None, num_cpus=1.0
    )
    assert not wants_ray(args, 1)  # one video: one worker, no Ray
    assert wants_ray(args, 2)  # two videos, two CPUs: two workers
    assert not wants_ray(argparse.Namespace(**{**vars(args), "num_cpus": 2.0}), 5)
    assert wants_ray(argparse.Namespace(**{**vars(args), "job_id": "j"}), 1)  # a job record
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert wants_ray(args, 1)  # a cluster to join


def test_ten_thousand_index_entries_are_one_read(tmp_path, monkeypatch):
    store = FeatureStore(str(tmp_path / "s.zarr"))
    _write(store, "v00000")
    writer = IndexWriter(store)
    for i in range(10_000):
        writer.complete(f"v{i:05d}", n_shots=2, encoder="random", source=f"s3://b/v{i:05d}.mp4")
    writer.flush(force=True)
    _no_walking(monkeypatch)
    assert len(FeatureStore(str(Path(store.url)), mode="r").video_ids(encoder="random")) == 10_000


def test_a_resume_indexes_what_the_killed_driver_recorded_but_did_not_index(tmp_path):
    """The record and the index are written seconds apart: a driver killed between the two
    leaves videos complete in its record that its index lacks. The resume, which does not
    re-send them, indexes them (found by bench_scale: one video of 200 was missing)."""
    from storyline.extractor.manifest import ManifestEntry
    from storyline.extractor.pipeline import ExtractionSettings
    from storyline.extractor.ray_runner import EncoderSpec, run_job
    from storyline.store.jobs import COMPLETE, JobRecord, JobSpec

    store = FeatureStore(str(tmp_path / "s.zarr"))
    encoder = {"name": "random", "id": "id-random"}
    settings = ExtractionSettings()
    _write(store, "a")
    writer = IndexWriter(store)
    writer.complete("a", n_shots=2, encoder="random", source="a.mp4")
    writer.flush(force=True)
    _write(FeatureStore(store.url, index_writes=False), "b")  # a worker's write: not indexed
    spec = JobSpec("j", "m", encoder, settings.to_attrs(), {})
    record = JobRecord.open(store, spec, ["a", "b"], ["a.mp4", "b.mp4"])
    record.mark("a", COMPLETE)
    record.mark("b", COMPLETE)  # the driver saw b finish, then died before indexing it
    record.flush(state="cancelled")
    assert store.video_ids() == ["a"]
    result = run_job(
        [ManifestEntry("a.mp4", "a"), ManifestEntry("b.mp4", "b")],
        store,
        encoder=EncoderSpec(),
        encoder_id=encoder,
        settings=settings,
        job_id="j",
        manifest="m",
        progress=False,
    )
    assert result.state == "succeeded" and result.workers == 0  # nothing left: no Ray
    assert FeatureStore(store.url, mode="r").video_ids() == ["a", "b"]
