"""`storyline` command line: one sub-command family per package, registered here.

Each listed module exposes ``register(subparsers)``, adding parsers whose default ``func``
takes the parsed arguments and returns the process exit code. A command imports only its
own module (``COMMANDS``), so `storyline info` never pays for torch or Ray.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = {  # module -> the commands it registers (tests check they match)
    "storyline.extractor.commands": ("extract",),
    "storyline.store.commands": ("info",),
    "storyline.deploy.serve": ("serve",),
    "storyline.trainers.encoder_commands": ("encoder", "retrieve", "response"),
    "storyline.trainers.commands": ("questions", "train", "eval", "report"),
    "storyline.synth.commands": ("synth",),
    "storyline.deploy.demo": ("demo",),
}
COMMANDS = {command: module for module, names in COMMAND_MODULES.items() for command in names}


def _command(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is known, else for every command."""
    parser = argparse.ArgumentParser(
        prog="storyline",
        description="Per-shot features from movies into a Zarr store, and models on top.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(COMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    if command is not None and command not in subparsers.choices and len(modules) == 1:
        return build_parser()  # the table is out of date: every command, the slow way
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
