"""Small jobs start fast: whole-process times of `storyline` commands against decode alone.

Every figure is a fresh process, start-up, imports, encoder load and store writes included,
divided by a fresh process that only decodes the same video at the pipeline's size
(= 1.00). The issue's targets: the default `storyline extract` on one video <= 1.4x;
`storyline info` < 1 s. Ratios, not seconds: the machine is shared.

    python bench/bench_startup.py                 # bench_extract's 3-minute 720p clip
    python bench/bench_startup.py --seconds 60    # a shorter clip
    python bench/bench_startup.py --video movie.mp4
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_extract import OUT, make_video  # noqa: E402  (the same clip as bench_extract)

DECODE_ONLY = """
import sys
from storyline.extractor.decode import iter_frame_batches, probe
meta = probe(sys.argv[1])
print(sum(len(b) for b in iter_frame_batches(meta, short_side=int(sys.argv[2]))))
"""


def run(argv: list[str]) -> float:
    """Wall seconds of one fresh process; fails loudly if the command fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measure; best is kept")
    args = parser.parse_args()
    video = args.video
    if video is None:
        OUT.mkdir(exist_ok=True)
        video = OUT / f"synthetic_720p_{args.seconds}s.mp4"
        if not video.exists():
            print(f"making {video} ...", flush=True)
            make_video(video, args.seconds)
    exe = str(Path(sys.executable).with_name("storyline"))
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    size = ["--input-size", str(args.input_size)]

    def best(make_argv, fresh: bool = True) -> float:
        times = []
        for i in range(args.repeat):
            store = work / f"s{time.monotonic_ns()}-{i}.zarr"
            times.append(run(make_argv(store)))
            if fresh:
                shutil.rmtree(store, ignore_errors=True)
        return min(times)

    extract = [exe, "extract", str(video), "--quiet", *size, "--store"]
    decode = best(lambda s: [sys.executable, "-c", DECODE_ONLY, str(video), str(args.input_size)])
    default = best(lambda s: [*extract, str(s)])
    no_ray = best(lambda s: [*extract, str(s), "--no-ray"])
    on_ray = best(lambda s: [*extract, str(s), "--job-id", "bench"])  # a job: embedded Ray
    kept = work / "kept.zarr"
    run([*extract, str(kept)])
    rerun = best(lambda s: [*extract, str(kept)], fresh=False)
    bare = best(lambda s: [sys.executable, "-c", "pass"])
    info = best(lambda s: [exe, "info", "--store", str(kept)], fresh=False)
    shutil.rmtree(work, ignore_errors=True)
    report = {
        "video": video.name,
        "seconds": {
            "decode_alone": round(decode, 2),
            "extract_default": round(default, 2),
            "extract_no_ray": round(no_ray, 2),
            "extract_on_ray": round(on_ray, 2),
            "rerun_nothing_left": round(rerun, 2),
            "info": round(info, 2),
            "python_bare": round(bare, 2),
        },
        "ratio_to_decode": {
            "extract_default": round(default / decode, 2),
            "extract_no_ray": round(no_ray / decode, 2),
            "extract_on_ray": round(on_ray / decode, 2),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
