"""The storyline API: submit extraction jobs to Ray and poll their progress from the store.

``create_app`` wires settings, routers and the Ray connection; with no Ray address it
starts a local Ray head (with its job server) for the app's lifetime, so one machine runs
the whole thing end to end.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from .deps import RayJobs, Roots, require_token
from .jobs_routes import router as jobs_router
from .models import Problem
from .ops_routes import health, metrics
from .settings import ServiceSettings

# every route but /healthz: the token, and Ray's job server behind it
GUARDED: dict[int | str, dict] = {
    401: {"model": Problem, "description": "no bearer token, or a wrong one"},
    503: {"model": Problem, "description": "Ray's job server is not reachable (yet)"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def put_interpreter_on_path() -> None:
    """This interpreter's folder first on PATH, before starting a Ray node from here.

    Jobs run ``python -m storyline.deploy.cli``, found on the PATH of the node that runs
    them; when that node is this host, its ``python`` must be the one with storyline.
    """
    folder = os.path.dirname(sys.executable)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != folder:
        os.environ["PATH"] = os.pathsep.join([folder, os.environ.get("PATH", "")])


def start_local_ray() -> str:
    """A local Ray head with its dashboard (the job server) on loopback; its URL."""
    import ray

    put_interpreter_on_path()
    context = ray.init(
        address="local",
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=_free_port(),
        log_to_driver=False,
    )
    return f"http://{context.dashboard_url}"


def connect(address: str, *, ttl: float, attempts: int = 30) -> RayJobs:
    """The job client, retried while a just-started dashboard comes up."""
    for attempt in range(attempts):
        try:
            return RayJobs(address, ttl=ttl)
        except (ConnectionError, RuntimeError):
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def app_from_env() -> FastAPI:
    """The app of one `serve --workers N` process: settings from ``STORYLINE_*`` only."""
    return create_app(ServiceSettings())  # type: ignore[call-arg]


def create_app(settings: ServiceSettings) -> FastAPI:
    roots = Roots(settings.roots)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started_ray = settings.ray_address is None
        address = start_local_ray() if started_ray else str(settings.ray_address)
        app.state.ray = connect(address, ttl=settings.ray_status_ttl_s)
        try:
            yield
        finally:
            app.state.ray = None
            if started_ray:
                import ray

                ray.shutdown()

    app = FastAPI(
        title="storyline",
        summary="Per-shot feature extraction jobs on Ray, with progress from the Zarr store",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.roots = roots
    app.state.ray = None
    app.include_router(health)
    app.include_router(metrics)  # its 401/503 are declared on the route (text/plain 200)
    app.include_router(jobs_router, dependencies=[Depends(require_token)], responses=GUARDED)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    return app


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with every method the path supports in ``Allow`` (Starlette names only those of
    the first route matching the path: POST /jobs would hide GET /jobs)."""
    path = request.url.path
    allowed = sorted(
        {
            method
            for route in request.app.routes
            if isinstance(route, APIRoute) and route.path_regex.match(path)
            for method in route.methods
        }
    )
    return JSONResponse(
        {"detail": f"{request.method} is not allowed on {path}; use {', '.join(allowed)}"},
        status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )
