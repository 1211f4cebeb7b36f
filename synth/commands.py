"""`storyline synth`: write the synthetic movies, trailers and QA set the trainers learn on."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .tables import DEFAULT_MOVIES, DEFAULT_TRAILERS, SynthConfig

EXIT_OK, EXIT_ERROR = 0, 2
_DEFAULTS = SynthConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic movies and trailers with known cuts and planted structure",
        description="Write small synthetic movies, trailers and a MovieQA-format QA set, with "
        "known cuts (cuts.json), genres and keywords visible in the frames, and a "
        "shot order that a model with memory can predict (see storyline.synth).",
    )
    parser.add_argument("--out", required=True, help="folder to write into (created)")
    parser.add_argument(
        "--movies",
        type=int,
        default=DEFAULT_MOVIES,
        help=f"number of movies (default {DEFAULT_MOVIES})",
    )
    parser.add_argument(
        "--trailers",
        type=int,
        default=DEFAULT_TRAILERS,
        help="number of trailers; trailer i is of film i, so the first --movies share their "
        f"movie's tags and split (default {DEFAULT_TRAILERS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--clips-per-movie",
        type=int,
        default=_DEFAULTS.clips_per_movie,
        help=f"QA clips per movie (default {_DEFAULTS.clips_per_movie})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 8),
        help="processes rendering and encoding videos (default: the CPU count, at most 8)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the set and print what was written; exit code 2 on bad arguments."""
    from .files import make_synthetic  # the renderer's imports, only when it runs

    start = time.perf_counter()
    try:
        if args.clips_per_movie < 0:
            raise ValueError(f"--clips-per-movie must be >= 0, got {args.clips_per_movie}")
        summary = make_synthetic(
            args.out,
            movies=args.movies,
            trailers=args.trailers,
            seed=args.seed,
            config=SynthConfig(clips_per_movie=args.clips_per_movie),
            workers=args.workers,
            progress=not args.quiet,
        )
    except ValueError as exc:
        print(f"storyline synth: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    seconds = time.perf_counter() - start
    print(
        f"wrote {summary.movies} movies, {summary.trailers} trailers, {summary.clips} clips "
        f"({summary.shots} shots, {summary.frames} frames), {summary.questions} questions, "
        f"{summary.words} word vectors to {summary.out} in {seconds:.1f}s"
    )
    print(
        f"next: storyline extract --store STORE --manifest {summary.out}/movies.csv "
        f"(and trailers.csv, clips.csv)"
    )
    return EXIT_OK
