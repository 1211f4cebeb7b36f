"""`storyline demo`: the paper end to end on synthetic data, on this machine.

Each step prints the `storyline` command a user would type and runs it in this process:
synthetic trailers and movies -> shots and frames (a Ray job on the embedded local Ray)
-> encoder trained from trailers -> movies extracted with it (and with the random
encoder, for comparison) -> next-shot questions, LSTM, tag classifiers, QA -> the report
tables and the two figures.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable
from pathlib import Path


def _step(title: str, command: str, main: Callable[[list[str]], int]) -> None:
    """Print a step and the command a user would type for it, then run that command."""
    print(f"\n== {title}\n$ storyline {command}", flush=True)
    started = time.perf_counter()
    code = main(shlex.split(command))
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    if code != 0:
        raise SystemExit(f"storyline demo: step failed with exit code {code}: {title}")


def run(args: argparse.Namespace) -> int:
    from .cli import main

    out = Path(args.out)
    q = shlex.quote
    data = out / "data"
    trailers, movies = q(str(out / "trailers.zarr")), q(str(out / "movies.zarr"))
    ckpt = q(str(out / "trailer-encoder.pt"))
    manifest = {name: q(str(data / f"{name}.csv")) for name in ("trailers", "movies", "clips")}
    size, quiet = args.input_size, " --quiet" if args.quiet else ""
    trained = f"--encoder trailers --checkpoint {ckpt}"
    started = time.perf_counter()

    steps = [
        (
            "1. Make synthetic trailers, movies and a MovieQA-style set (known cuts, tags)",
            f"synth --out {q(str(data))} --movies {args.movies} --trailers {args.trailers}"
            f" --seed 0{quiet}",
        ),
        (
            "2. Trailers -> shots, features and cached frames, as a job on the embedded Ray",
            f"extract --store {trailers} --manifest {manifest['trailers']} --frames"
            f" --input-size {size} --job-id demo-trailers{quiet}",
        ),
        (
            "3. Learn the shot encoder from the trailers' genre and keyword tags",
            f"train encoder --store {trailers} --out {ckpt} --steps {args.encoder_steps}"
            f" --batch-videos 4 --shots-per-video 4 --warmup 10"
            f" --eval-interval {args.encoder_steps}{quiet}",
        ),
        (
            "4. Movies -> shots and features of the trailer-trained encoder",
            f"extract --store {movies} --manifest {manifest['movies']} {trained} --frames"
            f" --job-id demo-movies-trailers{quiet}",
        ),
        (
            "5. The same movies with the random encoder (shots reused, detection skipped)",
            f"extract --store {movies} --manifest {manifest['movies']} --input-size {size}"
            f" --job-id demo-movies-random{quiet}",
        ),
        (
            "6. QA clips -> features of the trailer-trained encoder",
            f"extract --store {movies} --manifest {manifest['clips']} {trained}"
            f" --job-id demo-clips{quiet}",
        ),
        (
            "7. Next-shot questions (in-movie and cross-movie), saved in the store",
            f"questions --store {movies} --manifest {manifest['movies']}{quiet}",
        ),
        (
            "8. Movie QA head on clip features + word vectors",
            f"train qa --store {movies} --encoder trailers --qa {q(str(data / 'qa.json'))}"
            f" --word-vectors {q(str(data / 'vectors.txt'))} --out {q(str(out / 'qa.pt'))}"
            f"{quiet}",
        ),
        (
            "9. Report: next-shot accuracy (LSTM vs baseline) and tag classifiers, per encoder",
            f"report --store {movies} --manifest {manifest['movies']}"
            f" --steps {args.model_steps} --tag-steps {args.model_steps}"
            f" --out {q(str(out / 'report.md'))}{quiet}",
        ),
    ]
    for title, command in steps:
        _step(title, command, main)
    genres = _vocabulary(out / "trailer-encoder.pt")
    tag = args.tag or genres[0]
    _step(
        "10. What the encoder sees: the shots that respond most to a tag",
        f"retrieve --store {movies} {trained} --tag {q(tag)} --top 16"
        f" --out {q(str(out / f'retrieve-{tag}.png'))}",
        main,
    )
    movie_id = _first_movie(str(out / "movies.zarr"))
    tags = args.response_tags or ",".join(genres[:3])
    _step(
        f"11. Tag responses along movie {movie_id}",
        f"response --store {movies} --video {movie_id} {trained}"
        f" --tags {q(tags)} --out {q(str(out / f'response-{movie_id}.png'))}",
        main,
    )
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s. In {out}: trailers.zarr, movies.zarr,"
        f" trailer-encoder.pt, report.md, retrieve-{tag}.png, response-{movie_id}.png"
    )
    return 0


def _vocabulary(checkpoint: Path) -> list[str]:
    """The trained encoder's genres: the tags a response plot can show."""
    from ..extractor.encoder import load_checkpoint

    return list(load_checkpoint(checkpoint)["vocabulary"]["genres"])


def _first_movie(store_url: str) -> str:
    from ..store import FeatureStore

    store = FeatureStore(store_url, mode="r")
    movies = [v for v in store.video_ids(encoder="trailers") if v.startswith("movie_")]
    return movies[0]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the paper end to end on synthetic data")
    parser.add_argument("--out", default="demo-out", help="folder for data, stores, figures")
    parser.add_argument("--movies", type=int, default=16)
    parser.add_argument("--trailers", type=int, default=32)
    parser.add_argument(
        "--input-size", type=int, default=64, help="encoder input (the paper's: 224)"
    )
    parser.add_argument("--encoder-steps", type=int, default=60)
    parser.add_argument(
        "--model-steps", type=int, default=300, help="steps of each model the report trains"
    )
    parser.add_argument("--tag", help="tag to retrieve shots for (default: the first genre)")
    parser.add_argument("--response-tags", help="default: the encoder's first three genres")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
