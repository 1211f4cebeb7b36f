"""Extraction jobs on a real local Ray (2 CPUs): completion, failures, retries, restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from storyline.extractor.manifest import read_manifest
from storyline.extractor.pipeline import ExtractionSettings
from storyline.extractor.ray_runner import EncoderSpec, RayOptions, plan_workers, run_job
from storyline.store import FeatureStore
from storyline.store.jobs import read_job, read_videos

from .media import make_clip
from .test_ray_support import SIZE, local_cluster, make_videos

N_VIDEOS, N_BAD = 20, 2
ENCODER = EncoderSpec(input_size=64)
FAST = RayOptions(update_interval=0.2)


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    return local_cluster()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_videos(tmp_path_factory.mktemp("ray-videos"), N_VIDEOS, bad=N_BAD)


def _run(manifest: Path, store: Path, job_id: str, **kwargs: object):
    entries = read_manifest(str(manifest))
    return run_job(
        entries,
        FeatureStore(str(store)),
        encoder=ENCODER,
        settings=ExtractionSettings(),
        options=kwargs.pop("options", FAST),  # type: ignore[arg-type]
        job_id=job_id,
        manifest=str(manifest),
        progress=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _features(store: Path, ids: list[str]) -> dict[str, np.ndarray]:
    fs = FeatureStore(str(store), mode="r")
    return {vid: fs.features(vid, "random") for vid in ids}


def _mtimes(store: Path, ids: list[str]) -> dict[str, float]:
    return {vid: (store / "videos" / vid / "zarr.json").stat().st_mtime_ns for vid in ids}


GOOD = [f"clip{i:03d}" for i in range(N_VIDEOS)]


def _complete_on_disk(store: Path) -> int:
    """Videos whose own metadata says complete (what the driver's index catches up to)."""
    complete = 0
    for meta in store.glob("videos/*/zarr.json"):
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError):  # being written
            continue
        complete += attrs.get("status") == "complete"
    return complete


@pytest.fixture(scope="module")
def clean_store(cluster: dict[str, str], videos: Path, tmp_path_factory: pytest.TempPathFactory):
    """A clean run over every video: the reference the other tests compare with."""
    store = tmp_path_factory.mktemp("clean") / "s.zarr"
    result = _run(videos, store, "clean")
    return store, result


def test_job_completes_and_bad_videos_fail_with_reasons(clean_store, videos: Path) -> None:
    store, result = clean_store
    assert result.state == "succeeded"
    assert result.counts == {"pending": 0, "running": 0, "complete": N_VIDEOS, "failed": N_BAD}
    assert set(result.errors) == {"bad0", "bad1"}
    assert all("not a readable video" in e for e in result.errors.values())
    fs = FeatureStore(str(store), mode="r")
    assert sorted(fs.video_ids(encoder="random")) == GOOD
    record = read_job(str(store), "clean")
    assert record["state"] == "succeeded" and record["counts"]["complete"] == N_VIDEOS
    assert record["shots"] == sum(len(fs.shots(v)) for v in GOOD)
    assert record["ended"] >= record["started"] and record["eta_s"] == 0.0
    total, failed = read_videos(str(store), "clean", status="failed")
    assert total == N_BAD and {v["id"] for v in failed} == {"bad0", "bad1"}
    # no GPU here: the actors fell back to CPU and asked Ray for none
    if not ray.cluster_resources().get("GPU"):
        assert record["ray"]["num_gpus"] == 0.0
        assert {a["device"] for a in record["ray"]["actors"]} == {"cpu"}


def test_pool_follows_the_cluster(cluster: dict[str, str]) -> None:
    """The 2-CPU test cluster: one actor per CPU, no GPU (tests/test_pool.py: GPU shapes)."""
    plan = plan_workers(RayOptions())
    if not ray.cluster_resources().get("GPU"):
        assert (plan.workers, plan.num_gpus, plan.threads) == (2, 0.0, 1)
    assert plan_workers(RayOptions(num_cpus=2)).workers == 1


def test_retry_failed_redoes_only_the_failed(clean_store, videos: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(clean_store[0], store)
    before = _mtimes(store, GOOD)
    fixed = videos.parent / "fixed"
    fixed.mkdir(exist_ok=True)
    manifest = fixed / "manifest.csv"
    make_clip(fixed / "bad0.mp4", [12, 14], size=SIZE, seed=99)  # bad0 now plays
    for name in [*(f"clip{i:03d}.mp4" for i in range(N_VIDEOS)), "bad1.mp4"]:
        (fixed / name).unlink(missing_ok=True)
        (fixed / name).symlink_to(videos.parent / name)
    manifest.write_text(videos.read_text())
    result = _run(manifest, store, "clean", retry_failed=True)
    assert result.counts["complete"] == N_VIDEOS + 1 and result.counts["failed"] == 1
    assert set(result.errors) == {"bad1"}
    assert _mtimes(store, GOOD) == before  # the complete videos were not touched


def test_sigkilled_worker_is_replaced_and_its_video_retried(
    clean_store, videos: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 300  # actors start slowly on a loaded machine
        while time.monotonic() < deadline:
            try:
                record = read_job(str(store), "killed")
            except Exception:
                time.sleep(0.05)
                continue
            if record["counts"]["complete"] >= 3:
                pid = record["ray"]["actors"][0]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    result = _run(videos, store, "killed")
    killer.join(timeout=5)
    assert killed, "the job ended before a worker could be killed"
    assert result.counts == {"pending": 0, "running": 0, "complete": N_VIDEOS, "failed": N_BAD}
    assert set(result.errors) == {"bad0", "bad1"}  # the killed worker's video is not among them
    fs = FeatureStore(str(store), mode="r")
    assert sorted(fs.video_ids(encoder="random")) == GOOD
    clean, after = _features(clean_store[0], GOOD), _features(store, GOOD)
    for vid in GOOD:
        np.testing.assert_array_equal(after[vid], clean[vid])
        np.testing.assert_array_equal(fs.shots(vid), FeatureStore(str(clean_store[0])).shots(vid))


def test_killed_driver_resumes_without_redoing_complete_videos(
    cluster: dict[str, str], videos: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    exe = Path(sys.executable).with_name("storyline")
    driver = subprocess.Popen(
        [
            str(exe),
            "extract",
            "--store",
            str(store),
            "--manifest",
            str(videos),
            "--input-size",
            "64",
            "--job-id",
            "resumed",
            "--quiet",
            "--workers",  # one actor: 16 videos left when 4 are done, on any machine
            "1",
            "--address",
            cluster["gcs"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # actors start slowly on a loaded machine
        while time.monotonic() < deadline and driver.poll() is None:
            # each video's own status, not the index: the index lags by a record interval
            if _complete_on_disk(store) >= 4:
                break
            time.sleep(0.02)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.kill()  # SIGKILL: no chance to write a last record
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    done = sorted(
        v.id for v in FeatureStore(str(store), mode="r").iter_videos() if v.status == "complete"
    )
    assert 4 <= len(done) < N_VIDEOS
    # the killed driver's index lists no video that is not complete (it may lag behind)
    assert set(FeatureStore(str(store), mode="r").video_ids()) <= set(done)
    before = _mtimes(store, done)
    assert read_job(str(store), "resumed")["state"] == "running"  # as the killed driver left it
    time.sleep(3 * FAST.update_interval + 5.5)  # until the old driver's heartbeat is stale
    result = _run(videos, store, "resumed")
    assert result.counts["complete"] == N_VIDEOS and result.counts["failed"] == N_BAD
    assert _mtimes(store, done) == before  # complete videos were skipped, not redone
    assert sorted(FeatureStore(str(store), mode="r").video_ids()) == GOOD  # index caught up
    assert set(FeatureStore(str(store), mode="r").index()["failed"]) == {"bad0", "bad1"}


def test_a_long_video_reports_its_frames_while_it_runs(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    """Progress moves before the video ends: the record lists it in flight with frames
    decoded of its frame count, frames/s counts them, and the ETA comes from frames."""
    folder = tmp_path / "long"
    folder.mkdir()
    make_clip(folder / "long.mp4", [600, 600, 600], size=SIZE, seed=5)
    (folder / "manifest.csv").write_text("video,id\nlong.mp4,long\n")
    store = tmp_path / "s.zarr"
    seen: list[dict] = []
    outcome: list = []
    options = RayOptions(update_interval=0.2, progress_interval=0.2)
    job = threading.Thread(
        target=lambda: outcome.append(_run(folder / "manifest.csv", store, "long", options=options))
    )
    job.start()
    while job.is_alive():
        try:
            record = read_job(str(store), "long")
        except Exception:
            record = None
        if record and record.get("in_flight"):
            seen.append(record)
        time.sleep(0.1)
    job.join()
    assert outcome[0].counts["complete"] == 1
    partial = [
        r
        for r in seen
        if r["state"] == "running"
        and r["counts"]["complete"] == 0
        and 0 < r["in_flight"][0]["frames"] < r["in_flight"][0]["frame_count"]
    ]
    assert partial, f"no record showed the video part-way ({len(seen)} records in flight)"
    last = {k: v for k, v in partial[-1].items() if k not in ("settings", "ray")}
    assert last["in_flight"][0]["frame_count"] == 1800 and last["in_flight"][0]["id"] == "long"
    assert 0 < last["in_flight"][0]["progress"] < 1
    assert last["frames_in_flight"] == last["in_flight"][0]["frames"], json.dumps(last)
    assert last["frames_per_s"] > 0 and last["eta_s"] is not None and last["eta_s"] > 0
    final = read_job(str(store), "long")
    assert final["in_flight"] == [] and final["frames"] == 1800 and final["eta_s"] == 0.0
