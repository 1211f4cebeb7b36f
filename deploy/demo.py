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


def _step(title: str, argv: list[str], main: Callable[[list[str]], int], *, ok=(0,)) -> None:
    print(f"\n== {title}\n$ storyline {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    code = main(argv)
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    if code not in ok:
        raise SystemExit(f"storyline demo: step failed with exit code {code}: {title}")


def run(args: argparse.Namespace) -> int:
    from .cli import main

    out = Path(args.out)
    data = out / "data"
    trailers, movies = str(out / "trailers.zarr"), str(out / "movies.zarr")
    encoder_ckpt = str(out / "trailer-encoder.pt")
    size = str(args.input_size)
    quiet = ["--quiet"] if args.quiet else []
    started = time.perf_counter()

    _step(
        "1. Make synthetic trailers, movies and a MovieQA-style set (known cuts, planted tags)",
        [
            "synth",
            "--out",
            str(data),
            "--movies",
            str(args.movies),
            "--trailers",
            str(args.trailers),
            "--seed",
            "0",
            *quiet,
        ],
        main,
    )
    _step(
        "2. Trailers -> shots, features and cached frames, as a job on the embedded Ray",
        [
            "extract",
            "--store",
            trailers,
            "--manifest",
            str(data / "trailers.csv"),
            "--frames",
            "--input-size",
            size,
            "--job-id",
            "demo-trailers",
            *quiet,
        ],
        main,
    )
    _step(
        "3. Learn the shot encoder from the trailers' genre and keyword tags",
        [
            "train",
            "encoder",
            "--store",
            trailers,
            "--out",
            encoder_ckpt,
            "--steps",
            str(args.encoder_steps),
            *quiet,
        ],
        main,
    )
    _step(
        "4. Movies and QA clips -> shots and features of the trailer-trained encoder",
        [
            "extract",
            "--store",
            movies,
            "--manifest",
            str(data / "movies.csv"),
            "--encoder",
            "trailers",
            "--checkpoint",
            encoder_ckpt,
            "--frames",
            "--job-id",
            "demo-movies-trailers",
            *quiet,
        ],
        main,
    )
    _step(
        "5. The same movies with the random encoder (shots reused, detection skipped)",
        [
            "extract",
            "--store",
            movies,
            "--manifest",
            str(data / "movies.csv"),
            "--input-size",
            size,
            "--job-id",
            "demo-movies-random",
            *quiet,
        ],
        main,
    )
    _step(
        "6. QA clips -> features of the trailer-trained encoder",
        [
            "extract",
            "--store",
            movies,
            "--manifest",
            str(data / "clips.csv"),
            "--encoder",
            "trailers",
            "--checkpoint",
            encoder_ckpt,
            "--job-id",
            "demo-clips",
            *quiet,
        ],
        main,
    )
    _step(
        "7. Next-shot questions (in-movie and cross-movie), saved in the store",
        ["questions", "--store", movies, "--manifest", str(data / "movies.csv"), *quiet],
        main,
    )
    _step(
        "8. Movie QA head on clip features + word vectors",
        [
            "train",
            "qa",
            "--store",
            movies,
            "--encoder",
            "trailers",
            "--qa",
            str(data / "qa.json"),
            "--word-vectors",
            str(data / "vectors.txt"),
            "--out",
            str(out / "qa.pt"),
            *quiet,
        ],
        main,
    )
    _step(
        "9. Report: LSTM vs baseline next-shot accuracy and tag classifiers, every encoder",
        [
            "report",
            "--store",
            movies,
            "--manifest",
            str(data / "movies.csv"),
            "--out",
            str(out / "report.md"),
            *quiet,
        ],
        main,
    )
    _step(
        "10. What the encoder sees: top shots for a tag, and tags along a movie",
        [
            "retrieve",
            "--store",
            movies,
            "--encoder",
            "trailers",
            "--checkpoint",
            encoder_ckpt,
            "--tag",
            args.tag,
            "--top",
            "16",
            "--out",
            str(out / f"retrieve-{args.tag}.png"),
        ],
        main,
    )
    movie_id = _first_movie(movies)
    _step(
        f"11. Tag responses along movie {movie_id}",
        [
            "response",
            "--store",
            movies,
            "--video",
            movie_id,
            "--encoder",
            "trailers",
            "--checkpoint",
            encoder_ckpt,
            "--tags",
            args.response_tags,
            "--out",
            str(out / f"response-{movie_id}.png"),
        ],
        main,
    )
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s. In {out}: trailers.zarr, movies.zarr,"
        f" trailer-encoder.pt, report.md, retrieve-{args.tag}.png, response-{movie_id}.png"
    )
    return 0


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
        "--input-size", type=int, default=112, help="encoder input (the paper's is 224)"
    )
    parser.add_argument("--encoder-steps", type=int, default=300)
    parser.add_argument("--tag", default="horror", help="tag to retrieve shots for")
    parser.add_argument("--response-tags", default="horror,romance,scifi")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
