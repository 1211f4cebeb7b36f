"""Where one video's extraction time goes, against the peers' two-pass way.

Times, in one process and one run (interpreter start-up excluded):
  decode    decord, every frame once, at the pipeline's size
  decode_pyav  the same frames through PyAV, the fallback for codecs decord lacks (AV1)
  encode    the encoder on the sampled frames only (n_shots x 3)
  full      storyline's one-pass pipeline (decode + detect + sample + encode)
  two-pass  scenedetect's own detect() on the file, then decord seeking to 3 frames per
            shot, same encoder (what video2dataset-style tools do)
With --transnetv2 (needs storyline[transnetv2]) also, on CPU unless CUDA is there:
  transnetv2_detect  TransNetV2 alone on the first 512 decoded frames (shrink + model)
  transnetv2_full    the one-pass pipeline with --detector transnetv2, as a ratio to decode
and prints the ratios the issue sets targets for: full / (decode + encode) <= 1.25 and
two-pass / full >= 1.4. Ratios, not seconds: these machines are noisy.

    python bench/bench_extract.py                 # makes a 3-minute 720p clip, 8 s shots
    python bench/bench_extract.py --video movie.mp4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import decord
import numpy as np
import torch
from scenedetect import AdaptiveDetector, detect

from storyline.extractor.decode import iter_frame_batches, probe
from storyline.extractor.encoder import random_encoder
from storyline.extractor.pipeline import ExtractionSettings, center_crop, extract_video
from storyline.extractor.shots import sample_positions
from storyline.synth.video_writer import write_video

OUT = Path(__file__).parent / "out"


def make_video(path: Path, seconds: int, shot_seconds: int = 8, fps: int = 24) -> None:
    """A 720p clip of textured shots with camera-like motion, hard cuts every 8 s."""
    rng = np.random.default_rng(0)
    height, width = 720, 1280
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def frames():
        for _ in range(seconds // shot_seconds):
            base = rng.uniform(40, 200, size=3)
            freq = rng.uniform(0.01, 0.04, size=2)
            for t in range(shot_seconds * fps):
                wave = np.sin(xx * freq[0] + t * 0.15) + np.cos(yy * freq[1] - t * 0.1)
                frame = base + 40 * wave[..., None] * np.array([1.0, 0.6, -0.8])
                yield np.clip(frame, 0, 255).astype(np.uint8)

    write_video(path, frames(), fps=fps, crf=23)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measure; best is kept")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--transnetv2", action="store_true", help="also time TransNetV2")
    parser.add_argument("--skip-two-pass", action="store_true", help="skip the peer's way")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    video = args.video
    if video is None:
        OUT.mkdir(exist_ok=True)
        video = OUT / f"synthetic_720p_{args.seconds}s.mp4"
        if not video.exists():
            print(f"making {video} ...", flush=True)
            make_video(video, args.seconds)
    encoder = random_encoder(input_size=args.input_size)
    size = encoder.input_size
    meta = probe(str(video))
    print(f"{video.name}: {meta.frame_count} frames {meta.width}x{meta.height} @ {meta.fps:.2f}")
    print(f"torch threads {torch.get_num_threads()}, encoder bf16={encoder.bf16}, input {size}")

    def decode_only(video_meta=meta) -> int:
        return sum(len(b) for b in iter_frame_batches(video_meta, short_side=size, batch_size=32))

    pyav_meta = probe(str(video), decoder="pyav")

    def full():
        return extract_video(str(video), encoder, ExtractionSettings())

    def two_pass() -> np.ndarray:
        scenes = detect(str(video), AdaptiveDetector())
        bounds = [(s.frame_num, e.frame_num) for s, e in scenes] or [(0, meta.frame_count)]
        width = round(meta.width * size / min(meta.width, meta.height) / 2) * 2
        height = round(meta.height * size / min(meta.width, meta.height) / 2) * 2
        reader = decord.VideoReader(str(video), width=width, height=height)
        feats = []
        for start, end in bounds:
            frames = reader.get_batch(sample_positions(start, end).tolist()).asnumpy()
            feats.append(encoder.encode(np.ascontiguousarray(center_crop(frames, size))).mean(0))
        return np.stack(feats)

    def best(fn):
        runs = [timed(fn) for _ in range(args.repeat)]
        return min(r[0] for r in runs), runs[0][1]

    t_full, result = best(full)
    sampled = np.random.default_rng(0).integers(
        0, 255, size=(len(result.shots) * 3, size, size, 3), dtype=np.uint8
    )

    def encode_only() -> None:
        for i in range(0, len(sampled), 48):
            encoder.encode(sampled[i : i + 48])

    t_decode, n = best(decode_only)
    t_pyav, n_pyav = best(lambda: decode_only(pyav_meta))
    if n_pyav != n:
        raise SystemExit(f"PyAV decoded {n_pyav} frames, decord {n}: numbering differs")
    t_encode, _ = best(encode_only)
    t_two, two_features = (0.0, []) if args.skip_two_pass else best(two_pass)
    report = {
        "video": video.name,
        "frames": n,
        "shots": len(result.shots),
        "two_pass_shots": len(two_features),
        "seconds": {
            "decode": round(t_decode, 2),
            "decode_pyav": round(t_pyav, 2),
            "encode": round(t_encode, 2),
            "full": round(t_full, 2),
            "two_pass": round(t_two, 2),
        },
        "full_fps": round(n / t_full, 1),
        "decode_fps": {"decord": round(n / t_decode, 1), "pyav": round(n / t_pyav, 1)},
        "pyav_over_decord": round(t_pyav / t_decode, 3),
        "full_over_decode_plus_encode": round(t_full / (t_decode + t_encode), 3),
        "two_pass_over_full": None if args.skip_two_pass else round(t_two / t_full, 3),
    }
    if args.transnetv2:
        report["transnetv2"] = time_transnetv2(video, meta, encoder, size, n, t_decode, best)
    print(json.dumps(report, indent=2))


def time_transnetv2(video: Path, meta, encoder, size: int, n: int, t_decode: float, best):
    """TransNetV2's detection speed alone, and its one-pass pipeline against decode alone."""
    from storyline.extractor.transnet import TransNetDetector

    first: list[np.ndarray] = []
    for batch in iter_frame_batches(meta, short_side=size, batch_size=32):
        first.append(batch)
        if sum(len(b) for b in first) >= 512:
            break
    frames = np.concatenate(first)

    def detect() -> None:
        detector = TransNetDetector(meta.fps, device=encoder.device)
        for start in range(0, len(frames), 32):
            detector.push_batch(start, frames[start : start + 32])
        detector.finish(len(frames))

    TransNetDetector(meta.fps, device=encoder.device)  # load the weights before timing
    t_detect, _ = best(detect)
    settings = ExtractionSettings(detector="transnetv2")
    t_full, result = best(lambda: extract_video(str(video), encoder, settings))
    return {
        "device": str(encoder.device),
        "detect_frames": len(frames),
        "detect_fps": round(len(frames) / t_detect, 1),
        "full_seconds": round(t_full, 2),
        "full_fps": round(n / t_full, 1),
        "full_over_decode": round(t_full / t_decode, 2),
        "shots": len(result.shots),
    }


if __name__ == "__main__":
    main()
