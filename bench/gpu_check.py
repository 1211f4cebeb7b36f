"""Does storyline's GPU path work on this machine, and how fast? One JSON object on stdout.

    make gpu-check                      # or: python bench/gpu_check.py
    python bench/gpu_check.py --cpu-rehearsal   # the same checks on CPU, small (no GPU needed)

On a GPU machine (fresh checkout, `make setup` done; under 5 minutes), it measures:
  encoder    BN-Inception at 224: frames/s in bf16 channels-last (the GPU default) and in
             fp32, and their agreement (cosine of the features, must be >= 0.999)
  memory     peak CUDA memory of this process (encoder and TransNetV2 checks)
  transnetv2 TransNetV2 frames/s on the GPU (its 100-frame windows; needs the extra)
  ray_job    a job on a local Ray over 16 synthetic videos with fractional-GPU actors:
             every video complete, every actor on cuda
  decode     decord frames/s of a 720p H.264 video on CPU, for comparison
Exit code 0 when every check passes, 1 when one fails. Without CUDA it prints that no GPU
was found and exits 0. `--cpu-rehearsal` runs every check on CPU with small sizes, so the
script itself is exercised where no GPU is.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from storyline.extractor.decode import iter_frame_batches, probe
from storyline.extractor.encoder import random_encoder
from storyline.synth.video_writer import write_video

MIN_COSINE = 0.999


def synthetic_video(path: Path, *, width: int, height: int, frames: int, seed: int) -> Path:
    """Textured shots (a new texture and tint every 24 frames) that pan: cheap to make."""
    rng = np.random.default_rng(seed)

    def generate():
        for shot in range(0, frames, 24):
            texture = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
            texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))
            tint = rng.integers(-60, 60, 3)
            base = np.clip(texture.astype(np.int16) + tint, 0, 255).astype(np.uint8)
            for t in range(min(24, frames - shot)):
                yield np.roll(base, 3 * t, axis=1)

    write_video(path, generate(), fps=24)
    return path


def check_encoder(device: str, frames: np.ndarray, rounds: int) -> dict[str, Any]:
    encoder = random_encoder(input_size=224, device=device)
    results: dict[str, Any] = {}
    features = {}
    for name, bf16 in (("bf16_channels_last", True), ("fp32_channels_last", False)):
        encoder.bf16 = bf16
        encoder.encode(frames[:8])  # warm-up: kernels chosen, memory allocated
        start = time.perf_counter()
        for _ in range(rounds):
            out = encoder.encode(frames)
        results[f"{name}_fps"] = round(rounds * len(frames) / (time.perf_counter() - start), 1)
        features[name] = out.astype(np.float64)
    a, b = features["bf16_channels_last"], features["fp32_channels_last"]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    results["cosine_min"] = round(float(cosine.min()), 5)
    results["cosine_mean"] = round(float(cosine.mean()), 5)
    results["ok"] = bool(cosine.min() >= MIN_COSINE)
    return results


def check_transnetv2(device: str, frames: np.ndarray, windows: int) -> dict[str, Any]:
    try:
        from storyline.extractor.transnet import (
            WINDOW,
            TransNetDetector,
            TransNetUnavailable,
            load_model,
            shrink,
        )

        load_model(device)
    except TransNetUnavailable as exc:
        return {"ok": False, "error": str(exc)}
    detector = TransNetDetector(24.0, device=device)
    start = time.perf_counter()
    for i in range(0, len(frames), 32):
        detector.push_batch(i, frames[i : i + 32])
    detector.finish(len(frames))
    pipeline_fps = len(frames) / (time.perf_counter() - start)
    small = torch.from_numpy(shrink(frames[:WINDOW])).to(device)
    batch = small.unsqueeze(0).repeat(windows, 1, 1, 1, 1)  # windows x 100 x 27 x 48 x 3
    model = load_model(device)
    with torch.inference_mode():
        model(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(3):
            model(batch)
        if device == "cuda":
            torch.cuda.synchronize()
    scored = 3 * windows * (WINDOW // 2)  # each window scores its middle 50 frames
    return {
        "ok": True,
        "model_fps": round(scored / (time.perf_counter() - start), 1),
        "detector_fps": round(pipeline_fps, 1),  # decoded 224 frames in, shrink on CPU
        "windows_per_call": windows,
    }


def check_decode(video: Path) -> dict[str, Any]:
    meta = probe(str(video))
    start = time.perf_counter()
    n = sum(len(b) for b in iter_frame_batches(meta, short_side=224))
    return {
        "video": f"{meta.width}x{meta.height} H.264, {n} frames",
        "decord_cpu_fps": round(n / (time.perf_counter() - start), 1),
    }


def check_ray_job(folder: Path, videos: int, num_gpus: float, workers: int) -> dict[str, Any]:
    from storyline.extractor.manifest import read_manifest
    from storyline.extractor.pipeline import ExtractionSettings
    from storyline.extractor.pool import RayOptions
    from storyline.extractor.ray_runner import EncoderSpec, run_job
    from storyline.store import FeatureStore
    from storyline.store.jobs import read_job

    lines = ["video,id"]
    for i in range(videos):
        synthetic_video(folder / f"v{i:02d}.mp4", width=320, height=240, frames=72, seed=i)
        lines.append(f"v{i:02d}.mp4,v{i:02d}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    store = FeatureStore(str(folder / "store.zarr"))
    start = time.perf_counter()
    result = run_job(
        read_manifest(str(manifest)),
        store,
        encoder=EncoderSpec(input_size=224),
        settings=ExtractionSettings(),
        options=RayOptions(num_gpus=num_gpus, workers=workers, update_interval=0.5),
        job_id="gpu-check",
        manifest=str(manifest),
        progress=False,
    )
    record = read_job(store.url, "gpu-check")
    actors = record.get("ray", {}).get("actors", [])
    devices = sorted({a["device"] for a in actors})
    return {
        "state": result.state,
        "complete": result.counts.get("complete", 0),
        "videos": videos,
        "errors": result.errors,
        "actors": len(actors),
        "num_gpus_per_actor": record.get("ray", {}).get("num_gpus"),
        "actor_devices": devices,
        "seconds": round(time.perf_counter() - start, 1),
        "frames_per_s": round(result.frames / max(result.seconds, 1e-9), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cpu-rehearsal", action="store_true", help="run every check on CPU, small"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not torch.cuda.is_available() and not args.cpu_rehearsal:
        print(
            json.dumps(
                {
                    "gpu": False,
                    "message": "no GPU found (torch.cuda.is_available() "
                    "is False): nothing to check; run this on a machine with CUDA",
                }
            )
        )
        return 0
    device = "cpu" if args.cpu_rehearsal else "cuda"
    small = args.cpu_rehearsal
    report: dict[str, Any] = {
        "gpu": device == "cuda",
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (rehearsal)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="storyline-gpu-check-") as tmp:
        folder = Path(tmp)
        video = synthetic_video(
            folder / "720p.mp4", width=1280, height=720, frames=96 if small else 480, seed=0
        )
        meta = probe(str(video))
        decoded = np.concatenate(list(iter_frame_batches(meta, short_side=224)))
        left = (decoded.shape[2] - 224) // 2
        crops = np.ascontiguousarray(decoded[:, :, left : left + 224])
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        report["encoder"] = check_encoder(device, crops[: 16 if small else 256], 1 if small else 5)
        report["transnetv2"] = check_transnetv2(device, decoded, 1 if small else 16)
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
            report["peak_cuda_memory_mib"] = round(peak, 1)
        report["decode"] = check_decode(video)
        gpus = torch.cuda.device_count() if device == "cuda" else 0
        workers = 2 if small else max(1, min(8, os.cpu_count() or 1, 4 * gpus))
        jobs_folder = folder / "job"
        jobs_folder.mkdir()
        report["ray_job"] = check_ray_job(
            jobs_folder, 4 if small else 16, 0 if small else 0.25, workers
        )
    job = report["ray_job"]
    checks = {
        "bf16_agrees_with_fp32": report["encoder"]["ok"],
        "transnetv2_runs": report["transnetv2"]["ok"],
        "every_video_complete": job["state"] == "succeeded" and job["complete"] == job["videos"],
        f"actors_on_{device}": job["actor_devices"] == [device],
    }
    report["checks"] = checks
    report["ok"] = all(checks.values())
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
