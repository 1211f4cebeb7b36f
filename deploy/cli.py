"""`storyline` command line: one sub-command family per package, registered here.

Each listed module exposes ``register(subparsers)``, adding parsers whose default ``func``
takes the parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "storyline.extractor.commands",  # extract
    "storyline.store.commands",  # info
    "storyline.deploy.serve",  # serve
    "storyline.trainers.encoder_commands",  # encoder, retrieve, response
    "storyline.trainers.commands",  # questions, train, eval, report
    "storyline.synth.commands",  # synth
    "storyline.deploy.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storyline",
        description="Per-shot features from movies into a Zarr store, and models on top.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
