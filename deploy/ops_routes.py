"""`/healthz` (no token) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from .deps import RayDep, require_token
from .jobs_routes import list_jobs

health = APIRouter(tags=["ops"])
metrics = APIRouter(tags=["ops"], dependencies=[Depends(require_token)])


@health.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness only: answers without Ray or a store, for load balancers."""
    return {"status": "ok"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _json_problem(description: str) -> dict[str, Any]:
    """An error answered as JSON by a text/plain route (a model would be filed as text)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@metrics.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        401: _json_problem("no bearer token, or a wrong one"),
        503: _json_problem("Ray's job server is not reachable (yet)"),
    },
)
def prometheus(ray_jobs: RayDep) -> PlainTextResponse:
    """Per job: videos by status, shots, frames/s; jobs by state."""
    jobs = list_jobs(ray_jobs).jobs
    lines = [
        "# HELP storyline_job_videos Videos of a job by status.",
        "# TYPE storyline_job_videos gauge",
    ]
    for job in jobs:
        for name, count in job.counts.model_dump().items():
            lines.append(f'storyline_job_videos{{job="{_label(job.id)}",status="{name}"}} {count}')
    lines += [
        "# HELP storyline_job_shots Shots extracted by a job.",
        "# TYPE storyline_job_shots gauge",
    ]
    lines += [f'storyline_job_shots{{job="{_label(j.id)}"}} {j.shots}' for j in jobs]
    lines += [
        "# HELP storyline_job_frames_per_second Decode rate of a job's last run.",
        "# TYPE storyline_job_frames_per_second gauge",
    ]
    lines += [
        f'storyline_job_frames_per_second{{job="{_label(j.id)}"}} {j.frames_per_s}' for j in jobs
    ]
    lines += ["# HELP storyline_jobs Jobs by state.", "# TYPE storyline_jobs gauge"]
    for state in ("pending", "running", "succeeded", "failed", "cancelled"):
        lines.append(f'storyline_jobs{{state="{state}"}} {sum(j.state == state for j in jobs)}')
    return PlainTextResponse(
        "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
    )
