"""`storyline serve`: the API under uvicorn."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import ValidationError

from .settings import ServiceSettings


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

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
    if args.workers <= 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
        return 0
    return _run_workers(settings, args)


def _run_workers(settings: ServiceSettings, args: argparse.Namespace) -> int:
    """Several uvicorn processes on one port. They share one Ray: a local head is started
    here, not by each worker, and every worker reads its settings from ``STORYLINE_*``."""
    import uvicorn

    from .app import start_local_ray

    os.environ["STORYLINE_ROOTS"] = json.dumps(list(settings.roots))
    started_ray = settings.ray_address is None
    os.environ["STORYLINE_RAY_ADDRESS"] = (
        start_local_ray() if started_ray else str(settings.ray_address)
    )
    try:
        uvicorn.run(
            "storyline.deploy.app:app_from_env",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
        )
    finally:
        if started_ray:
            import ray

            ray.shutdown()
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
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn processes (one per core serves the most polls; see README)",
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=run)
