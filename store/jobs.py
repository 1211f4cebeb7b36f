"""Job records: what a job extracts and how far it got, under ``jobs/<job_id>`` in the store.

Written only by the job's driver (one writer, DESIGN "The store"); read by ``storyline info
--job`` and the API, which therefore hold no state of their own. Layout:

    jobs/<job_id>/             attrs: the summary (state, counts, shots, frames/s, ETA, ...),
                                      small, rewritten every few seconds
    jobs/<job_id>/ids          string (n,)  video ids in manifest order, written once
    jobs/<job_id>/sources      string (n,)  video paths or URLs, written once
    jobs/<job_id>/status       uint8  (n,)  one status code per video, one chunk
    jobs/<job_id>/errors/      attrs: {video_id: reason} of failed videos, rewritten only
                                      when a failure is added or cleared

A 10,000-video job thus costs a 10 kB array write plus a small JSON per update, however
many videos changed, and a progress poll reads one small JSON document.

The summary's keys (``read_job`` returns them; the API renders them). Keys are only ever
added, never renamed, so readers of an older record keep working:

    id, manifest, store, encoder {name, id}, settings, driver {host, pid}
    ray          the pool: address, workers, num_cpus, num_gpus (GPU share per actor),
                 threads, capacity (actors the cluster held), max_retries,
                 actors [{pid, node, device, gpu_ids}]
    state        running | succeeded | failed | cancelled
    started, updated, ended, resumed      unix times (updated: the driver's heartbeat)
    n_videos     videos in the job
    counts       {pending, running, complete, failed}
    skipped      videos already complete in the store when the run started (not re-sent)
    shots, frames    shots and frames of the videos this job completed
    frames_in_flight frames decoded so far of the videos in flight
    worker_s     seconds the workers spent extracting (decode to store commit) in this run;
                 (ended - started) x workers - worker_s is the job's own overhead
    frames_per_s frames decoded per second by this run, in-flight frames included
    eta_s        seconds left, from frames: the in-flight videos' remaining frames plus the
                 pending videos at the mean frame count seen so far; None until known
    in_flight    [{id, source, frames, frame_count, progress}]: the videos being
                 extracted now, frames decoded of frame_count (None until probed),
                 progress in [0, 1]; refreshed every few seconds from the actors' reports
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr
import zarr.dtype
from zarr.errors import GroupNotFoundError

from .errors import StoreError
from .feature_store import FeatureStore

PENDING, RUNNING, COMPLETE, FAILED = 0, 1, 2, 3
STATUS_NAMES = ("pending", "running", "complete", "failed")
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
JobState = Literal["running", "succeeded", "failed", "cancelled"]
JOB_STATES: tuple[JobState, ...] = ("running", "succeeded", "failed", "cancelled")


class JobNotFoundError(StoreError, KeyError):
    """No record of this job in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class JobConflictError(StoreError):
    """A job id that is already taken by a different or still-running job."""


def new_job_id() -> str:
    """A unique, sortable, Zarr-node-safe id: time of creation plus 24 random bits."""
    return time.strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def _strings(group: zarr.Group, name: str, values: Sequence[str]) -> None:
    array = group.create_array(
        name,
        shape=(len(values),),
        dtype=zarr.dtype.VariableLengthUTF8(),  # type: ignore[arg-type]
        chunks=(max(len(values), 1),),
        overwrite=True,
    )
    if values:
        array[:] = np.asarray(values, dtype=object)


@dataclass(frozen=True)
class JobSpec:
    """What a job is: fixed when it is created, checked when it is resumed."""

    job_id: str
    manifest: str  # the manifest's path or URL, or "<arguments>" for videos given inline
    encoder: dict[str, str]  # {"name", "id"}
    settings: dict[str, Any]  # ExtractionSettings.to_attrs()
    ray: dict[str, Any]  # workers, num_cpus, num_gpus, max_retries, address


class JobRecord:
    """The driver's handle on its job record: statuses in memory, flushed every few seconds.

    ``flush`` writes only what changed since the last flush, so calling it often is cheap.
    """

    def __init__(
        self,
        group: zarr.Group,
        ids: list[str],
        status: np.ndarray,
        errors: dict[str, str],
        *,
        interval: float,
    ) -> None:
        self.group = group
        self.ids = ids
        self.index = {vid: i for i, vid in enumerate(ids)}
        self.status = status
        self.errors = errors
        self.interval = interval
        self.attrs: dict[str, Any] = dict(group.attrs)
        self._status_array: zarr.Array = group["status"]  # type: ignore[assignment]
        self._errors_group: zarr.Group = group["errors"]  # type: ignore[assignment]
        self._dirty_status = self._dirty_errors = False
        self._last_flush = 0.0
        self._started = time.time()
        self._frames_at_start = int(self.attrs.get("frames", 0))
        self._videos_done_here = 0  # videos whose frames add_work counted in this run
        self.worker_s = 0.0  # seconds workers spent in extract_entry in this run
        self.in_flight: list[dict[str, Any]] = []  # set by the driver from the actors' reports

    # ------------------------------------------------------------------ create or resume
    @classmethod
    def open(
        cls,
        store: FeatureStore,
        spec: JobSpec,
        ids: Sequence[str],
        sources: Sequence[str],
        *,
        interval: float = 2.0,
    ) -> JobRecord:
        """Create the job's record, or reopen it to resume: the same id must name the same
        videos and encoder, and no live driver may hold it."""
        jobs = store.root.require_group("jobs")
        now = time.time()
        driver = {"host": socket.gethostname(), "pid": os.getpid()}
        if spec.job_id in jobs:
            group: zarr.Group = jobs[spec.job_id]  # type: ignore[assignment]
            attrs = dict(group.attrs)
            stored_ids = list(group["ids"][:])
            if stored_ids != list(ids):
                raise JobConflictError(
                    f"job {spec.job_id!r} in {store.url} was created with another list of "
                    f"videos ({len(stored_ids)} videos from {attrs.get('manifest')}): "
                    "pick a new --job-id"
                )
            if attrs.get("encoder", {}).get("id") != spec.encoder["id"]:
                raise JobConflictError(
                    f"job {spec.job_id!r} ran encoder {attrs.get('encoder')}, not "
                    f"{spec.encoder}: pick a new --job-id"
                )
            heartbeat_age = now - float(attrs.get("updated", 0))
            if attrs.get("state") == "running" and heartbeat_age < 3 * interval + 5:
                raise JobConflictError(
                    f"job {spec.job_id!r} is running (driver {attrs.get('driver')}, last "
                    f"update {heartbeat_age:.0f} s ago): cancel it or wait for it to end"
                )
            status = np.asarray(group["status"][:], dtype=np.uint8)
            status[status == RUNNING] = PENDING  # a killed driver's videos in flight
            errors = {str(k): str(v) for k, v in group["errors"].attrs.items()}
            group.attrs.update(
                {
                    "state": "running",
                    "ended": None,
                    "resumed": now,
                    "driver": driver,
                    "ray": spec.ray,
                    "updated": now,
                }
            )
        else:
            group = jobs.create_group(
                spec.job_id,
                attributes={
                    "storyline_job": 1,
                    "id": spec.job_id,
                    "manifest": spec.manifest,
                    "store": store.url if "://" in store.url else os.path.abspath(store.url),
                    "encoder": spec.encoder,
                    "settings": spec.settings,
                    "ray": spec.ray,
                    "driver": driver,
                    "state": "running",
                    "started": now,
                    "ended": None,
                    "updated": now,
                    "n_videos": len(ids),
                    "counts": {"pending": len(ids), "running": 0, "complete": 0, "failed": 0},
                    "shots": 0,
                    "frames": 0,
                    "frames_per_s": 0.0,
                    "eta_s": None,
                },
            )
            _strings(group, "ids", list(ids))
            _strings(group, "sources", list(sources))
            group.create_array(
                "status",
                shape=(len(ids),),
                dtype="uint8",
                chunks=(max(len(ids), 1),),
                fill_value=PENDING,
            )
            group.create_group("errors")
            status = np.zeros(len(ids), dtype=np.uint8)
            errors = {}
        record = cls(group, list(ids), status, errors, interval=interval)
        record._dirty_status = True
        record.flush(force=True)
        return record

    # ------------------------------------------------------------------ updates
    def mark(self, video_id: str, code: int, *, error: str | None = None) -> None:
        self.status[self.index[video_id]] = code
        self._dirty_status = True
        if code == FAILED:
            self.errors[video_id] = error or "failed (no reason given)"
            self._dirty_errors = True
        elif video_id in self.errors:
            del self.errors[video_id]
            self._dirty_errors = True

    def add_work(self, *, shots: int, frames: int, seconds: float = 0.0) -> None:
        self.worker_s += seconds
        self.attrs["shots"] = int(self.attrs.get("shots", 0)) + shots
        self.attrs["frames"] = int(self.attrs.get("frames", 0)) + frames
        self._videos_done_here += 1

    def set_ray(self, ray: dict[str, Any]) -> None:
        """The pool as started (sized once the cluster is known)."""
        self.attrs["ray"] = ray
        self.group.attrs.update({"ray": ray})

    def due(self) -> bool:
        """True when ``flush`` would write now."""
        return time.time() - self._last_flush >= self.interval

    def _frames_in_flight(self) -> int:
        return sum(int(v.get("frames") or 0) for v in self.in_flight)

    def frames_per_s(self) -> float:
        """Frames decoded per second by this driver's run (a resume starts afresh),
        counting the frames decoded so far of the videos in flight."""
        elapsed = max(time.time() - self._started, 1e-9)
        done = int(self.attrs.get("frames", 0)) - self._frames_at_start
        return (done + self._frames_in_flight()) / elapsed

    def eta_s(self, counts: dict[str, int], rate: float) -> float | None:
        """Seconds left at ``rate`` frames/s: the in-flight videos' frames left, plus the
        pending videos at the mean frame count of the videos seen so far."""
        if rate <= 0:
            return None
        known = [v["frame_count"] for v in self.in_flight if v.get("frame_count")]
        done_frames = int(self.attrs.get("frames", 0)) - self._frames_at_start
        seen, seen_frames = len(known) + self._videos_done_here, sum(known) + done_frames
        if seen == 0:
            return None
        left = sum(
            max(int(v["frame_count"]) - int(v.get("frames") or 0), 0)
            for v in self.in_flight
            if v.get("frame_count")
        )
        unprobed = counts["running"] - len(known)  # sent, not yet probed: a whole video
        left += (counts["pending"] + max(unprobed, 0)) * seen_frames / seen
        return left / rate

    def counts(self) -> dict[str, int]:
        bins = np.bincount(self.status, minlength=len(STATUS_NAMES))
        return {name: int(bins[code]) for code, name in enumerate(STATUS_NAMES)}

    def ids_with(self, code: int) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(self.status == code)]

    def flush(self, *, force: bool = False, state: JobState | None = None) -> bool:
        """Write the record if ``interval`` seconds passed (or ``force``); True if written."""
        now = time.time()
        if not force and state is None and now - self._last_flush < self.interval:
            return False
        if self._dirty_status:
            self._status_array[:] = self.status
            self._dirty_status = False
        if self._dirty_errors:
            self._errors_group.attrs.put(dict(self.errors))  # replaces, so cleared ones go
            self._dirty_errors = False
        counts = self.counts()
        rate = self.frames_per_s()
        remaining = counts["pending"] + counts["running"]
        eta = self.eta_s(counts, rate)
        update: dict[str, Any] = {
            "counts": counts,
            "skipped": int(self.attrs.get("skipped", 0)),
            "shots": int(self.attrs.get("shots", 0)),
            "frames": int(self.attrs.get("frames", 0)),
            "frames_in_flight": self._frames_in_flight(),
            "frames_per_s": round(rate, 1),
            "eta_s": round(eta, 1) if eta is not None else None,
            "in_flight": self.in_flight,
            "worker_s": round(self.worker_s, 3),
            "updated": now,
        }
        if state is not None:
            update.update({"state": state, "ended": now if state != "running" else None})
            if state != "running":
                update["eta_s"] = 0.0 if remaining == 0 else None
        self.attrs.update(update)
        self.group.attrs.update(update)
        self._last_flush = now
        return True


# ---------------------------------------------------------------------- readers
def _job_group(store_url: str, job_id: str) -> zarr.Group:
    try:
        return zarr.open_group(f"{store_url.rstrip('/')}/jobs/{job_id}", mode="r", zarr_format=3)
    except (FileNotFoundError, GroupNotFoundError, KeyError) as exc:
        raise JobNotFoundError(f"no job {job_id!r} in {store_url}") from exc


def read_job(store_url: str, job_id: str) -> dict[str, Any]:
    """The job's summary (state, counts, shots, frames/s, ETA...): one small JSON read.

    Opens the job's group directly rather than the store's root, so a poll costs the same
    for a store of ten videos or ten thousand.
    """
    attrs = dict(_job_group(store_url, job_id).attrs)
    if "storyline_job" not in attrs:
        raise JobNotFoundError(f"{store_url}/jobs/{job_id} is not a storyline job record")
    attrs.pop("storyline_job", None)
    return attrs


def list_jobs(store_url: str) -> list[dict[str, Any]]:
    """Summaries of every job recorded in a store, oldest first."""
    try:
        jobs = zarr.open_group(f"{store_url.rstrip('/')}/jobs", mode="r", zarr_format=3)
    except (FileNotFoundError, GroupNotFoundError):
        return []
    summaries = []
    for job_id, _ in jobs.groups():
        try:
            summaries.append(read_job(store_url, job_id))
        except JobNotFoundError:
            continue
    return sorted(summaries, key=lambda s: s.get("started", 0))


def read_videos(
    store_url: str,
    job_id: str,
    *,
    status: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    """One page of a job's videos (optionally only those with ``status``): (total, page)."""
    if status is not None and status not in STATUS_CODES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUS_NAMES)}")
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must be >= 0")
    group = _job_group(store_url, job_id)
    codes = np.asarray(group["status"][:])
    selected = (
        np.arange(len(codes)) if status is None else np.flatnonzero(codes == STATUS_CODES[status])
    )
    page = selected[offset : offset + limit]
    if len(page) == 0:
        return len(selected), []
    lo, hi = int(page.min()), int(page.max()) + 1  # read only the span the page covers
    ids = group["ids"][lo:hi]
    sources = group["sources"][lo:hi]
    errors = dict(group["errors"].attrs) if (codes[page] == FAILED).any() else {}
    items = []
    for i in page:
        vid = str(ids[i - lo])
        item: dict[str, Any] = {
            "id": vid,
            "source": str(sources[i - lo]),
            "status": STATUS_NAMES[int(codes[i])],
        }
        if codes[i] == FAILED:
            item["error"] = errors.get(vid)
        items.append(item)
    return len(selected), items
