"""Thousands of videos in one job, on a local Ray: what the job itself costs.

A manifest of ``--videos`` entries (default 10,000) with distinct ids over a few tiny
generated clips, run as `storyline extract` drivers joined to one local Ray:

1. the driver is SIGKILLed half-way, then the same command resumes the job: every video
   must end complete exactly once, and none complete before the kill may be redone
   (their store files keep their modification times);
2. from the job record: the overhead per video beyond extraction, i.e.
   ((ended - started) x workers - worker seconds in extract_entry) / videos, in ms;
3. the driver's RSS when 1,000 videos are done and at the end (sampled from /proc);
4. writing the job record (status array + summary) and the store's index, and listing the
   complete videos through the index (FeatureStore.video_ids, `storyline info`), at the
   job's size and at 10,000 videos.

    python bench/bench_scale.py                     # 10,000 videos: long on 2 cores
    python bench/bench_scale.py --videos 2000       # a reduced run; 10,000 for (4)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray

from storyline.store import FeatureStore
from storyline.store.index import IndexWriter
from storyline.store.jobs import JobRecord, JobSpec, read_job
from storyline.synth.video_writer import write_video

CLIPS = 4  # distinct files behind the manifest's entries


def make_manifest(folder: Path, videos: int, frames: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    for c in range(CLIPS):
        clip = []
        for s in range(2):
            base = rng.integers(20, 230, size=3)
            for t in range(frames // 2):
                frame = np.empty((48, 64, 3), np.uint8)
                frame[:] = base
                frame[(t + s * 7) % 32 : (t + s * 7) % 32 + 8, 4 + t % 48 :][:, :8] = 255
                clip.append(frame)
        write_video(folder / f"c{c}.mp4", clip)
    lines = ["video,id"] + [f"c{i % CLIPS}.mp4,v{i:05d}" for i in range(videos)]
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def complete_count(store: Path, job_id: str) -> int:
    try:
        return int(read_job(str(store), job_id)["counts"]["complete"])
    except Exception:
        return 0


def mtimes(store: Path, ids: list[str]) -> dict[str, int]:
    return {v: (store / "videos" / v / "zarr.json").stat().st_mtime_ns for v in ids}


def timed_median(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def io_at(n: int, work: Path) -> dict[str, float]:
    """Record flush, index flush and listing for a store of ``n`` complete videos (ms)."""
    store = FeatureStore(str(work / f"io{n}.zarr"))
    ids = [f"v{i:05d}" for i in range(n)]
    spec = JobSpec("io", "m", {"name": "random", "id": "x"}, {}, {})
    record = JobRecord.open(store, spec, ids, [f"s3://b/{v}.mp4" for v in ids], interval=0)
    for i, vid in enumerate(ids):
        record.mark(vid, 2 if i % 7 else 3, error=None if i % 7 else "not a readable video")
    record_ms = 1000 * timed_median(lambda: (record.mark(ids[0], 2), record.flush(force=True)))
    writer = IndexWriter(store)
    for vid in ids:
        writer.complete(vid, n_shots=40, encoder="random", source=f"s3://bucket/{vid}.mp4")
    started = time.perf_counter()
    writer.flush(force=True)
    index_ms = 1000 * (time.perf_counter() - started)
    list_ms = 1000 * timed_median(lambda: FeatureStore(store.url, mode="r").video_ids())
    exe = str(Path(sys.executable).with_name("storyline"))
    info_ms = 1000 * timed_median(
        lambda: subprocess.run([exe, "info", "--store", store.url], capture_output=True), 3
    )
    return {
        "record_flush_ms": round(record_ms, 1),
        "index_flush_ms": round(index_ms, 1),
        "list_complete_ms": round(list_ms, 1),
        "storyline_info_ms": round(info_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="local Ray CPUs")
    parser.add_argument("--work", type=Path, help="folder (default: a new temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = make_manifest(work, args.videos, args.frames)
    store = work / "s.zarr"
    context = ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    exe = str(Path(sys.executable).with_name("storyline"))
    argv = [exe, "extract", "--manifest", str(manifest), "--store", str(store)]
    argv += ["--input-size", "64", "--quiet", "--job-id", "scale"]
    argv += ["--address", context.address_info["gcs_address"]]
    report: dict[str, object] = {"videos": args.videos, "frames_per_video": args.frames}

    # 1. a driver killed half-way
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss: dict[str, float | None] = {}
    while driver.poll() is None:
        done = complete_count(store, "scale")
        if done >= 1000 and "at_1000" not in rss:
            rss["at_1000"] = rss_mb(driver.pid)
        if done >= args.videos // 2:
            break
        time.sleep(0.2)
    rss["peak_first_driver"] = None
    if driver.poll() is not None:
        raise SystemExit("the driver ended before half the videos were done")
    for line in Path(f"/proc/{driver.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss["peak_first_driver"] = int(line.split()[1]) / 1024
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = FeatureStore(str(store), mode="r")
    complete_before = [v.id for v in before.iter_videos() if v.status == "complete"]
    stamps = mtimes(store, complete_before)
    report["killed_at"] = len(complete_before)

    # 2. the resume, once the dead driver's heartbeat is stale
    time.sleep(3 * 2.0 + 5.5)
    started = time.perf_counter()
    resumed = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_seen: list[float] = []

    def sample() -> None:
        while resumed.poll() is None:
            value = rss_mb(resumed.pid)
            if value:
                peak_seen.append(value)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = resumed.communicate()
    sampler.join()
    if resumed.returncode != 0:
        raise SystemExit(f"the resumed driver failed: {out}")
    report["resume_seconds"] = round(time.perf_counter() - started, 1)
    rss["at_end"] = peak_seen[-1] if peak_seen else None
    rss["peak_resumed_driver"] = max(peak_seen) if peak_seen else None
    report["driver_rss_mb"] = {k: round(v, 1) if v else v for k, v in rss.items()}

    after = FeatureStore(str(store), mode="r")
    complete = [v.id for v in after.iter_videos() if v.status == "complete"]
    redone = [v for v, t in mtimes(store, complete_before).items() if t != stamps[v]]
    report["complete_exactly_once"] = sorted(complete) == [
        f"v{i:05d}" for i in range(args.videos)
    ] and sorted(after.video_ids()) == sorted(complete)
    report["redone_after_resume"] = len(redone)

    # 3. the job's own overhead, from the record of the resumed run
    record = read_job(str(store), "scale")
    workers = record["ray"]["workers"]
    videos_run = args.videos - len(complete_before)
    wall = record["ended"] - record["resumed"]
    report["resumed_run"] = {
        "videos": videos_run,
        "workers": workers,
        "wall_s": round(wall, 1),
        "worker_s": record["worker_s"],
        "extract_ms_per_video": round(1000 * record["worker_s"] / max(videos_run, 1), 1),
        "overhead_ms_per_video": round(
            1000 * (wall * workers - record["worker_s"]) / max(videos_run, 1), 1
        ),
    }
    ray.shutdown()

    # 4. record, index and listing at this size and at 10,000
    report["io"] = {str(n): io_at(n, work) for n in sorted({args.videos, 10_000})}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
