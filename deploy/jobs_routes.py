"""`/jobs`: submit a Ray job, list jobs, poll one, page its videos, cancel it."""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from ..store.jobs import JobNotFoundError, new_job_id, read_job, read_videos
from .deps import RayDep, RayJobs, Roots, RootsDep, SettingsDep
from .models import Cancelled, Counts, JobCreated, JobList, JobProgress, JobRequest, VideoPage
from .settings import ServiceSettings

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Ray's job status -> our state, for a job whose driver has not written a record yet
_BEFORE_RECORD = {"PENDING": "pending", "RUNNING": "pending", "STOPPED": "cancelled"}
# Ray's word wins over a record still saying "running" when the driver is gone
_DRIVER_GONE = {"STOPPED": "cancelled", "FAILED": "failed"}


def _ray_status(info: Any) -> str | None:
    return None if info is None else str(getattr(info.status, "value", info.status))


def _locate(job_id: str, ray_jobs: RayJobs, roots: Roots) -> tuple[Any, str | None]:
    """(Ray's latest submission of the job or None, its store or None); 404 if neither."""
    info = ray_jobs.latest().get(job_id)
    store = (info.metadata or {}).get("store") if info is not None else None
    if store is None:
        store = roots.find_store(job_id)
    if info is None and store is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return info, store


def _progress(job_id: str, info: Any, store: str | None) -> JobProgress:
    ray_status = _ray_status(info)
    try:
        record = read_job(store, job_id) if store else None
    except JobNotFoundError:
        record = None
    if record is None:
        state = _BEFORE_RECORD.get(ray_status or "", "failed")
        return JobProgress(id=job_id, state=state, ray_status=ray_status, store=store)
    state = record["state"]
    if state == "running" and ray_status in _DRIVER_GONE:
        state = _DRIVER_GONE[ray_status]
    fields = {k: record.get(k) for k in JobProgress.model_fields if k in record}
    fields.update(id=job_id, state=state, ray_status=ray_status, counts=Counts(**record["counts"]))
    return JobProgress(**fields)


def _entrypoint(
    settings: ServiceSettings,
    request: JobRequest,
    *,
    job_id: str,
    manifest: str,
    store: str,
    checkpoint: str | None,
) -> str:
    """The one command the server runs: `storyline extract` with validated arguments.

    `python` is resolved on the node that runs the driver, inside the job's runtime env: a
    path from the API's own host would not exist there and would bypass that env.
    """
    argv = [
        "python",
        "-m",
        "storyline.deploy.cli",
        "extract",
        "--quiet",
        "--manifest",
        manifest,
        "--store",
        store,
        "--job-id",
        job_id,
    ]
    if checkpoint:
        argv += ["--checkpoint", checkpoint, "--encoder", request.encoder]
    for flag, value in (
        ("--num-gpus", request.num_gpus),
        ("--workers", request.workers),
        ("--input-size", request.input_size),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return shlex.join(argv)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated)
def submit_job(
    request: JobRequest, settings: SettingsDep, roots: RootsDep, ray_jobs: RayDep
) -> JobCreated:
    """Submit `storyline extract` as a Ray job. Re-using a finished job's id resumes it."""
    manifest = roots.check(request.manifest, "manifest")
    store = roots.check(request.store, "store")
    checkpoint = roots.check(request.checkpoint, "checkpoint") if request.checkpoint else None
    if "://" not in manifest and not os.path.isfile(manifest):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"manifest not found: {manifest}")
    if "://" not in store and not os.path.isdir(os.path.dirname(store)):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"the store's folder does not exist: {store}"
        )
    if checkpoint and "://" not in checkpoint and not os.path.isfile(checkpoint):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"checkpoint not found: {checkpoint}"
        )
    if (request.encoder == "random") == bool(checkpoint):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "give a checkpoint with a named encoder, or neither (the 'random' encoder)",
        )
    job_id = request.job_id or new_job_id()
    running = ray_jobs.latest(fresh=True).get(job_id)
    if _ray_status(running) in ("PENDING", "RUNNING"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id!r} is already running")
    entrypoint = _entrypoint(
        settings, request, job_id=job_id, manifest=manifest, store=store, checkpoint=checkpoint
    )
    ray_jobs.submit(
        job_id=job_id,
        entrypoint=entrypoint,
        metadata={"store": store, "manifest": manifest},
        runtime_env=settings.runtime_env,
    )
    return JobCreated(id=job_id)


@router.get("", response_model=JobList)
def list_jobs(ray_jobs: RayDep) -> JobList:
    """Every job Ray knows, newest first, with its progress from its store."""
    latest = ray_jobs.latest()
    jobs = [
        _progress(job_id, info, (info.metadata or {}).get("store"))
        for job_id, info in latest.items()
    ]
    return JobList(jobs=sorted(jobs, key=lambda j: -(j.started or float("inf"))))


@router.get("/{job_id}", response_model=JobProgress)
def get_job(job_id: str, ray_jobs: RayDep, roots: RootsDep) -> JobProgress:
    """Progress from the store's job record; Ray's status says whether the driver lives."""
    info, store = _locate(job_id, ray_jobs, roots)
    return _progress(job_id, info, store)


@router.get("/{job_id}/videos", response_model=VideoPage)
def list_videos(
    job_id: str,
    ray_jobs: RayDep,
    roots: RootsDep,
    video_status: Annotated[
        str | None, Query(alias="status", pattern="^(pending|running|complete|failed)$")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> VideoPage:
    """One page of the job's videos, e.g. ``?status=failed`` with each reason."""
    _, store = _locate(job_id, ray_jobs, roots)
    try:
        total, videos = read_videos(
            store or "", job_id, status=video_status, offset=offset, limit=limit
        )
    except JobNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{exc}: the job has not started") from exc
    return VideoPage(total=total, offset=offset, limit=limit, videos=videos)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Cancelled)
def cancel_job(job_id: str, ray_jobs: RayDep) -> Cancelled:
    """Ask Ray to stop the driver; it records the job cancelled as it exits."""
    info = ray_jobs.latest(fresh=True).get(job_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Ray has no job {job_id!r} to cancel")
    state = _progress(job_id, info, (info.metadata or {}).get("store")).state
    if _ray_status(info) not in ("PENDING", "RUNNING") or state not in ("pending", "running"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job_id!r} is not running ({state}; Ray: {_ray_status(info)})",
        )
    stopping = ray_jobs.stop(info.submission_id)
    return Cancelled(id=job_id, ray_status=_ray_status(info), stopping=stopping)
