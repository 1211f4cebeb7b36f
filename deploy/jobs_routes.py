"""`/jobs`: submit a Ray job, list jobs, poll one, page its videos, cancel it."""

from __future__ import annotations

import csv
import functools
import os
import shlex
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from ..extractor.encoder import EncoderError, load_encoder
from ..extractor.manifest import ManifestError, read_manifest
from ..extractor.roots import is_url, outside_message
from ..store import FeatureStore, StoreError
from ..store.jobs import JobNotFoundError, new_job_id, read_job, read_videos
from .deps import RayDep, RayJobs, Roots, RootsDep, SettingsDep
from .models import (
    JOB_ID_PATTERN,
    Cancelled,
    Counts,
    JobCreated,
    JobList,
    JobProgress,
    JobRequest,
    Problem,
    VideoPage,
)
from .settings import ServiceSettings
from .summaries import Summaries

router = APIRouter(prefix="/jobs", tags=["jobs"])

SUMMARIES = Summaries()  # each job's summary until its record changes
STORES: dict[str, str] = {}  # job id -> store found under the roots (jobs Ray forgot)
MANIFEST_MAX_BYTES = 64 << 20  # a manifest of a million videos is ~100 MB; refuse videos as one
JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="the job's id")]

_WHY = {
    400: "a body that cannot be decoded",
    403: "a path outside the server's roots",
    404: "no such job",
    409: "the job is running, or the encoder name holds another encoder's features",
    422: "a malformed request, or one the server checked and refused (the detail says why)",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer (bodies: ``Problem``)."""
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


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


def _progress(job_id: str, info: Any, store: str | None, ray_jobs: RayJobs) -> JobProgress:
    ray_status = _ray_status(info)
    try:
        record = read_job(store, job_id) if store else None
    except JobNotFoundError:
        record = None
    if record is None:
        state = _BEFORE_RECORD.get(ray_status or "", "failed")
        error = ray_jobs.driver_error(info) if state == "failed" and info is not None else None
        return JobProgress(id=job_id, state=state, ray_status=ray_status, store=store, error=error)
    state = record["state"]
    if state == "running" and ray_status in _DRIVER_GONE:
        state = _DRIVER_GONE[ray_status]
    fields = {k: record.get(k) for k in JobProgress.model_fields if k in record}
    fields.update(id=job_id, state=state, ray_status=ray_status, counts=Counts(**record["counts"]))
    if state == "failed" and info is not None:
        fields["error"] = ray_jobs.driver_error(info)
    return JobProgress(**fields)


def _entrypoint(
    settings: ServiceSettings,
    request: JobRequest,
    *,
    roots: Roots,
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
    for root in (*map(str, roots.paths), *roots.urls):  # the job re-checks every video
        argv += ["--root", root]
    if checkpoint:
        argv += ["--checkpoint", checkpoint, "--encoder", request.encoder]
    for flag, value in (
        ("--num-gpus", request.num_gpus),
        ("--workers", request.workers),
        ("--input-size", request.input_size),
        ("--detector", request.detector),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return shlex.join(argv)


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _check_manifest(manifest: str, roots: Roots) -> int:
    """The manifest's video count; 422 if it is unreadable or lists videos outside the roots
    (named as the manifest writes them, so nothing is said about paths outside)."""
    local = not is_url(manifest) and os.path.isfile(manifest)
    if local and os.path.getsize(manifest) > MANIFEST_MAX_BYTES:
        raise _unprocessable(f"manifest {manifest} is over {MANIFEST_MAX_BYTES >> 20} MB")
    try:
        entries = read_manifest(manifest)
    except (ManifestError, OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
        raise _unprocessable(f"cannot read manifest {manifest}: {reason}") from exc
    offenders = roots.rule.outside([e.video for e in entries])
    if offenders:
        raise _unprocessable(outside_message("videos of the manifest", offenders, roots.rule))
    return len(entries)


@functools.lru_cache(maxsize=16)
def _encoder_id(checkpoint: str | None, mtime_ns: int, input_size: int | None) -> str:
    """The id a job's encoder will have (weights + preprocessing), per checkpoint version."""
    return load_encoder(
        "checkpoint" if checkpoint else None, checkpoint, input_size=input_size, device="cpu"
    ).id


def _check_encoder(store: str, name: str, checkpoint: str | None, input_size: int | None) -> None:
    """409 if the store already binds ``name`` to another encoder (the driver would refuse
    it); the id is only computed when the name is taken. Stores behind URLs: the driver."""
    if is_url(store) or not os.path.isfile(os.path.join(store, "zarr.json")):
        return
    try:
        stored = FeatureStore(store, mode="r").encoders().get(name)
    except (StoreError, OSError, ValueError):
        return  # not a storyline store yet (or not one at all): the driver says which
    if stored is None:
        return
    mtime = os.stat(checkpoint).st_mtime_ns if checkpoint else 0
    try:
        wanted = _encoder_id(checkpoint, mtime, input_size)
    except EncoderError as exc:
        raise _unprocessable(str(exc)) from exc
    if wanted != stored:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"encoder name {name!r} in {store} holds the features of encoder {stored}; this "
            f"job's encoder is {wanted} (other weights or input_size): pick another encoder "
            "name (with a checkpoint) or another store",
        )


def _check_workers(workers: int | None, ray_jobs: RayJobs) -> None:
    cpus = ray_jobs.cluster_cpus() if workers is not None else None
    if workers is not None and cpus is not None and workers > cpus:
        raise _unprocessable(
            f"workers {workers} is more than the cluster's {cpus:g} CPUs (one actor per CPU): "
            f"ask for at most {int(cpus)}, or leave workers out to use them all"
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobCreated,
    responses=problems(400, 403, 409, 422),
)
def submit_job(
    request: JobRequest, settings: SettingsDep, roots: RootsDep, ray_jobs: RayDep
) -> JobCreated:
    """Submit `storyline extract` as a Ray job. Re-using a finished job's id resumes it.

    Checked here: every path (and every video of the manifest) lies within the roots, the
    encoder name is free in the store or holds this encoder, workers fit the cluster.
    """
    manifest = roots.check(request.manifest, "manifest")
    store = roots.check(request.store, "store")
    checkpoint = roots.check(request.checkpoint, "checkpoint") if request.checkpoint else None
    if (request.encoder == "random") == bool(checkpoint):
        raise _unprocessable(
            "give a checkpoint with a named encoder, or neither (the 'random' encoder)"
        )
    if not is_url(store) and not os.path.isdir(os.path.dirname(store)):
        raise _unprocessable(f"the store's folder does not exist: {store}")
    if checkpoint and not is_url(checkpoint) and not os.path.isfile(checkpoint):
        raise _unprocessable(f"checkpoint not found: {checkpoint}")
    _check_manifest(manifest, roots)
    _check_workers(request.workers, ray_jobs)
    job_id = request.job_id or new_job_id()
    running = ray_jobs.latest(fresh=True).get(job_id)
    if _ray_status(running) in ("PENDING", "RUNNING"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id!r} is already running")
    _check_encoder(store, request.encoder, checkpoint, request.input_size)
    entrypoint = _entrypoint(
        settings,
        request,
        roots=roots,
        job_id=job_id,
        manifest=manifest,
        store=store,
        checkpoint=checkpoint,
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
    jobs = []
    for job_id, info in latest.items():
        store = (info.metadata or {}).get("store")
        make = functools.partial(_progress, job_id, info, store, ray_jobs)
        jobs.append(SUMMARIES.get(job_id, store, info, make))
    return JobList(jobs=sorted(jobs, key=lambda j: -(j.started or float("inf"))))


@router.get("/{job_id}", response_model=JobProgress, responses=problems(404))
async def get_job(job_id: JobId, ray_jobs: RayDep, roots: RootsDep) -> Response:
    """Progress from the store's job record; Ray's status says whether the driver lives,
    and ``error`` why a failed driver stopped.

    Served from the summary cache while the record is unchanged (a stat, no thread);
    reading the record, or Ray before its first answer, runs in the thread pool.
    """
    latest = ray_jobs.snapshot()
    if latest is None:
        latest = await run_in_threadpool(ray_jobs.latest)
    info = latest.get(job_id)
    store = (info.metadata or {}).get("store") if info is not None else None
    if store is None:
        store = STORES.get(job_id) or await run_in_threadpool(roots.find_store, job_id)
        if info is None and store is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
        if store is not None:
            STORES[job_id] = store
    hit = SUMMARIES.cached(job_id, store, info)
    if hit is None:
        hit = await run_in_threadpool(
            SUMMARIES.render,
            job_id,
            store,
            info,
            functools.partial(_progress, job_id, info, store, ray_jobs),
        )
    return Response(hit[1], media_type="application/json")


@router.get("/{job_id}/videos", response_model=VideoPage, responses=problems(404))
def list_videos(
    job_id: JobId,
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


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Cancelled,
    responses=problems(404, 409),
)
def cancel_job(job_id: JobId, ray_jobs: RayDep) -> Cancelled:
    """Ask Ray to stop the driver; it records the job cancelled as it exits."""
    info = ray_jobs.latest(fresh=True).get(job_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Ray has no job {job_id!r} to cancel")
    state = _progress(job_id, info, (info.metadata or {}).get("store"), ray_jobs).state
    if _ray_status(info) not in ("PENDING", "RUNNING") or state not in ("pending", "running"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job_id!r} is not running ({state}; Ray: {_ray_status(info)})",
        )
    stopping = ray_jobs.stop(info.submission_id)
    return Cancelled(id=job_id, ray_status=_ray_status(info), stopping=stopping)
