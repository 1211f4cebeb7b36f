"""`storyline serve`: the API under uvicorn."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .settings import ServiceSettings

    overrides: dict[str, object] = {}
    if args.root:
        overrides["roots"] = tuple(args.root)
    if args.ray_address:
        overrides["ray_address"] = args.ray_address
    try:
        settings = ServiceSettings(**overrides)
    except ValidationError as exc:
        # each error's place and message only: its input would print the token
        problems = "; ".join(
            f"{e['loc'][0] if e['loc'] else 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(
            f"storyline serve: error: {problems}. Set STORYLINE_TOKEN (or STORYLINE_TOKEN_FILE) "
            "and give --root DIR (or STORYLINE_ROOTS as a JSON list)",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="the job API (FastAPI): submit and poll jobs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--root", action="append", help="folder that job paths must lie in (repeatable)"
    )
    parser.add_argument(
        "--ray-address", help="Ray dashboard URL, e.g. http://HEAD:8265 (default: a local head)"
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=run)
