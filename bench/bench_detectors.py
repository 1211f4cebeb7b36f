"""Which detector, at which detection size: F1 per real clip and what detection costs.

Each clip in ../shared/data is decoded once at the pipeline's size (short side 224, as
for the encoder); every (detector, detection size) then runs over the same frames, as the
one-pass pipeline feeds them (strided, BGR). Scored against cuts.json within 1 frame;
"also_detected" frames (fades) count neither way. Cost: detection time per frame, and as a
share of decoding the same frames (the pipeline's dominant cost), in one run.

    python bench/bench_detectors.py                       # adaptive/content, sizes 32..224
    python bench/bench_detectors.py --transnetv2          # also TransNetV2 (optional extra)
    python bench/bench_detectors.py --data DIR --sizes 56 112
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from storyline.extractor.cut_scores import score_cuts
from storyline.extractor.decode import iter_frame_batches, probe
from storyline.extractor.shots import ShotDetector, cuts_to_shots, detection_frames

_PARENTS = Path(__file__).resolve().parents
DATA = next(  # ../shared/data beside the checkout, or beside its worktree folder
    (p / "shared" / "data" for p in _PARENTS[2:4] if (p / "shared" / "data").is_dir()),
    _PARENTS[2] / "shared" / "data",
)
OUT = Path(__file__).parent / "out"
DECODE_SIDE = 224  # the encoder's input size: frames are decoded at this short side
STEPS = {224: 1, 112: 2, 75: 3, 56: 4, 45: 5, 32: 7}  # short side -> stride from 224


def decode(path: Path) -> tuple[np.ndarray, float, float]:
    """All frames at the pipeline's size, the seconds it took, and the frame rate."""
    meta = probe(str(path))
    start = time.perf_counter()
    frames = np.concatenate(list(iter_frame_batches(meta, short_side=DECODE_SIDE)))
    return frames, time.perf_counter() - start, meta.fps


def run_scenedetect(
    frames: np.ndarray, fps: float, kind: str, side: int, luma_only: bool
) -> list[int]:
    detector = ShotDetector(kind, fps, luma_only=luma_only)
    step = max(1, round(min(frames.shape[1:3]) / side))
    cuts: list[int] = []
    for start in range(0, len(frames), 32):
        small = detection_frames(frames[start : start + 32], step)
        for j in range(len(small)):
            cuts += detector.push(start + j, small[j])
    cuts += detector.finish(len(frames))
    return cuts


def run_transnetv2(frames: np.ndarray, fps: float) -> list[int]:
    from storyline.extractor.transnet import TransNetDetector

    detector = TransNetDetector(fps)
    cuts: list[int] = []
    for start in range(0, len(frames), 32):
        cuts += detector.push_batch(start, frames[start : start + 32])
    cuts += detector.finish(len(frames))
    return cuts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(STEPS))
    parser.add_argument("--detectors", nargs="+", default=["adaptive", "content"])
    parser.add_argument("--luma", choices=["both", "off", "on"], default="both")
    parser.add_argument("--transnetv2", action="store_true", help="also score TransNetV2")
    args = parser.parse_args()
    truth = json.loads((args.data / "cuts.json").read_text())
    clips = sorted(k for k in truth if not k.startswith("_"))

    lumas = {"both": [False, True], "off": [False], "on": [True]}[args.luma]
    configs = [
        (kind, side, luma) for kind in args.detectors for luma in lumas for side in args.sizes
    ]
    if args.transnetv2:
        configs.append(("transnetv2", 27, False))
    names = {c: f"{c[0]}{'-luma' if c[2] else ''}@{c[1]}" for c in configs}
    f1: dict[str, dict[str, float]] = {names[c]: {} for c in configs}
    seconds = dict.fromkeys(f1, 0.0)
    decode_seconds, total_frames = 0.0, 0
    for clip in clips:
        frames, t_decode, fps = decode(args.data / clip)
        decode_seconds += t_decode
        total_frames += len(frames)
        for kind, side, luma in configs:
            name = names[kind, side, luma]
            start = time.perf_counter()
            if kind == "transnetv2":
                cuts = run_transnetv2(frames, fps)
            else:
                cuts = run_scenedetect(frames, fps, kind, side, luma)
            seconds[name] += time.perf_counter() - start
            found = cuts_to_shots(cuts, len(frames))[1:, 0].tolist()
            score = score_cuts(
                found, truth[clip]["hard_cuts"], ignore=truth[clip].get("also_detected", [])
            )
            f1[name][clip] = round(score.f1, 3)
        print(clip, {n: f1[n][clip] for n in f1}, flush=True)

    report = {
        "frames": total_frames,
        "decode_ms_per_frame": round(1000 * decode_seconds / total_frames, 3),
        "configs": {
            name: {
                "f1": f1[name],
                "min_f1": min(f1[name].values()),
                "mean_f1": round(float(np.mean(list(f1[name].values()))), 3),
                "detect_ms_per_frame": round(1000 * seconds[name] / total_frames, 3),
                "detect_over_decode": round(seconds[name] / decode_seconds, 3),
            }
            for name in f1
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "detectors.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "configs"}))
    header = "| clip | " + " | ".join(f1) + " |"
    print(header + "\n|" + "---|" * (len(f1) + 1))
    for clip in clips:
        print(f"| {clip} | " + " | ".join(f"{f1[n][clip]:.3f}" for n in f1) + " |")
    print("| **min** | " + " | ".join(f"{report['configs'][n]['min_f1']:.3f}" for n in f1) + " |")
    print(
        "| detect ms/frame (x decode) | "
        + " | ".join(
            f"{report['configs'][n]['detect_ms_per_frame']:.2f} "
            f"({report['configs'][n]['detect_over_decode']:.2f})"
            for n in f1
        )
        + " |"
    )


if __name__ == "__main__":
    main()
