"""Ray overhead: the same videos through the embedded Ray job and the single-process path.

    .venv/bin/python bench/bench_ray.py [--videos 60] [--frames 96]

Prints videos/s of both and their ratio, with and without Ray's start-up (ray.init and the
actors loading the encoder), which a long job pays once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch

from storyline.extractor.encoder import random_encoder
from storyline.extractor.manifest import read_manifest
from storyline.extractor.pipeline import ExtractionSettings
from storyline.extractor.ray_runner import EncoderSpec, RayOptions, init_ray, run_job
from storyline.extractor.run import extract_all
from storyline.store import FeatureStore
from storyline.synth.video_writer import write_video


def make_videos(folder: Path, count: int, frames: int) -> Path:
    rng = np.random.default_rng(0)
    lines = ["video,id"]
    for i in range(count):
        shots = [frames // 3, frames // 3, frames - 2 * (frames // 3)]
        clip = []
        for s, n in enumerate(shots):
            base = rng.integers(20, 230, size=3)
            for t in range(n):
                frame = np.empty((96, 160, 3), np.uint8)
                frame[:] = base
                frame[(t + s * 7) % 80 : (t + s * 7) % 80 + 16, 10 + 2 * t % 140 :][:, :16] = 255
                clip.append(frame)
        write_video(folder / f"v{i:03d}.mp4", clip)
        lines.append(f"v{i:03d}.mp4,v{i:03d}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the single-process run (2 was ~8x slower on the loaded 2-core "
        "machine: OpenMP threads spin against the decoder and other processes)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    manifest = make_videos(work, args.videos, args.frames)
    entries = read_manifest(str(manifest))
    settings = ExtractionSettings()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    encoder = random_encoder(input_size=args.input_size)
    summary = extract_all(
        entries, FeatureStore(str(work / "single.zarr")), encoder, settings, progress=False
    )
    single = time.perf_counter() - started
    assert summary.count("complete") == args.videos, summary.failed

    started = time.perf_counter()
    init_ray(None)
    ray_up = time.perf_counter() - started
    result = run_job(
        entries,
        FeatureStore(str(work / "ray.zarr")),
        encoder=EncoderSpec(input_size=args.input_size),
        settings=settings,
        options=RayOptions(),
        job_id="bench",
        manifest=str(manifest),
        progress=False,
    )
    ray_total = time.perf_counter() - started
    assert result.counts["complete"] == args.videos, result.errors
    ray.shutdown()

    # the job's own rate, from its first to its last video, without actor start-up
    from storyline.store.jobs import read_job

    record = read_job(str(work / "ray.zarr"), "bench")
    ray_steady = record["ended"] - record["started"]
    n = args.videos
    print(
        f"{n} videos x {args.frames} frames (160x96), encoder input {args.input_size}, "
        f"{ray.__version__=}"
    )
    print(
        f"single process : {single:6.1f} s  {n / single:6.2f} videos/s "
        f"({args.threads} torch threads, encoder load included)"
    )
    print(
        f"ray, job only  : {ray_steady:6.1f} s  {n / ray_steady:6.2f} videos/s  "
        f"ratio {single / ray_steady:.2f} (overhead {100 * (ray_steady / single - 1):+.0f}%)"
    )
    print(
        f"ray, all in    : {ray_total:6.1f} s  {n / ray_total:6.2f} videos/s  "
        f"ratio {single / ray_total:.2f} (ray.init {ray_up:.1f} s, actors "
        f"{ray_total - ray_up - ray_steady:.1f} s)"
    )


if __name__ == "__main__":
    main()
