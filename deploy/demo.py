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

from ..synth.tables import DEFAULT_MOVIES, DEFAULT_TRAILERS


def _step(title: str, command: str, main: Callable[[list[str]], int]) -> None:
    """Print a step (a title, unless it continues the one before) and the command a user
    would type for it, then run that command."""
    print((f"\n== {title}\n" if title else "") + f"$ storyline {command}", flush=True)
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
    size, seed, quiet = args.input_size, args.seed, " --quiet" if args.quiet else ""
    trained = f"--encoder trailers --checkpoint {ckpt}"
    started = time.perf_counter()

    steps = [
        (
            "1. Make synthetic trailers, movies and a MovieQA-style set (known cuts, tags)",
            f"synth --out {q(str(data))} --movies {args.movies} --trailers {args.trailers}"
            f" --seed {seed}{quiet}",
        ),
        (
            "2. Trailers -> shots, features and cached frames, as a job on the embedded Ray",
            f"extract --store {trailers} --manifest {manifest['trailers']} --frames"
            f" --input-size {size} --job-id demo-trailers{quiet}",
        ),
        (
            "3. Learn the shot encoder from the training trailers' genre and keyword tags",
            f"train encoder --store {trailers} --out {ckpt} --steps {args.encoder_steps}"
            f" --batch-videos 4 --shots-per-video 4 --warmup 10 --lr 3e-4 --head-lr-mult 30"
            f" --seed {seed}"
            f" --eval-interval {args.encoder_steps}{quiet}",
        ),
        (
            "4. Trailers -> features of the trained encoder (shots reused; the tag table is"
            " scored on the held-out trailers)",
            f"extract --store {trailers} --manifest {manifest['trailers']} {trained}"
            f" --job-id demo-trailers-trained{quiet}",
        ),
        (
            "5. Movies -> shots and features of the trailer-trained encoder",
            f"extract --store {movies} --manifest {manifest['movies']} {trained} --frames"
            f" --job-id demo-movies-trailers{quiet}",
        ),
        (
            "6. The same movies with the random encoder (shots reused, detection skipped)",
            f"extract --store {movies} --manifest {manifest['movies']} --input-size {size}"
            f" --job-id demo-movies-random{quiet}",
        ),
        (
            "7. QA clips -> features of both encoders",
            f"extract --store {movies} --manifest {manifest['clips']} {trained}"
            f" --job-id demo-clips-trailers{quiet}",
        ),
        (
            "",
            f"extract --store {movies} --manifest {manifest['clips']} --input-size {size}"
            f" --job-id demo-clips-random{quiet}",
        ),
        (
            "8. Next-shot questions (in-movie and cross-movie), saved in the store",
            f"questions --store {movies} --manifest {manifest['movies']} --seed {seed}{quiet}",
        ),
        (
            "9. Report: Tables 2, 4 and 5 for both encoders (tags on held-out trailers)",
            f"report --store {movies} --manifest {manifest['movies']}"
            f" --tags-store {trailers} --qa {q(str(data / 'qa.json'))}"
            f" --word-vectors {q(str(data / 'vectors.txt'))} --seed {seed}"
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
        f"retrieve --store {movies} {trained} --manifest {manifest['movies']} --tag {q(tag)}"
        " --top 16"
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
        f" trailer-encoder.pt, report.md, report.json, retrieve-{tag}.png,"
        f" response-{movie_id}.png"
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
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data, splits, questions and training (every seed is a fair draw)",
    )
    parser.add_argument("--movies", type=int, default=DEFAULT_MOVIES)
    parser.add_argument(
        "--trailers",
        type=int,
        default=DEFAULT_TRAILERS,
        help="the tag table needs >= 24 held-out trailers",
    )
    parser.add_argument(
        "--input-size", type=int, default=64, help="encoder input (the paper's: 224)"
    )
    parser.add_argument("--encoder-steps", type=int, default=400)
    parser.add_argument(
        "--model-steps",
        type=int,
        default=300,
        help="steps of the next-shot and tag models the report trains (the QA head: its default)",
    )
    parser.add_argument("--tag", help="tag to retrieve shots for (default: the first genre)")
    parser.add_argument("--response-tags", help="default: the encoder's first three genres")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
