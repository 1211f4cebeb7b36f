"""What the handlers depend on: the token check, the roots, and Ray's job client.

None of it holds job state: progress is in the stores, the job-to-store mapping in Ray's
job metadata (or found under the roots when Ray has forgotten the job).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..extractor.roots import Roots as ConfinedRoots
from .settings import ServiceSettings

JOB_METADATA_KEY = "storyline_job"
T = TypeVar("T")
AGENT_WAIT_S = 15  # how long a submit waits for a just-started head's job agent


def _reraise(exc: BaseException) -> None:
    raise exc


class Roots:
    """The folders (or URL prefixes) the server may touch; every client path is checked."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.rule = ConfinedRoots.of(roots)
        self.paths = self.rule.paths
        self.urls = self.rule.urls

    def check(self, value: str, what: str) -> str:
        """``value`` made absolute (symlinks followed), or a 403 naming the roots; the same
        403 whether or not the path exists."""
        resolved = self.rule.resolve(value)
        if resolved is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{what} {value!r} is outside the server's roots ({self.rule.describe()})",
            )
        return resolved

    def find_store(self, job_id: str) -> str | None:
        """A store under the roots holding ``jobs/<job_id>``: the root itself or one level
        down (``ROOT/NAME.zarr``); for jobs Ray no longer remembers (a restarted head)."""
        for root in self.paths:
            try:
                children = sorted(p for p in root.iterdir() if p.is_dir())
            except OSError:  # a root that is gone or unreadable holds no jobs
                continue
            for candidate in (root, *children):
                if (candidate / "jobs" / job_id / "zarr.json").is_file():
                    return str(candidate)
        return None


class RayJobs:
    """Ray's JobSubmissionClient, with the job list reused for ``ttl`` seconds so that many
    pollers cost the Ray head one request every ``ttl`` seconds. Past ``ttl`` the list is
    refreshed in the background: a poll never waits on the Ray head."""

    def __init__(self, address: str, *, ttl: float = 2.0) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        self.client = JobSubmissionClient(address)
        self.ttl = ttl
        self._lock = threading.Lock()  # one list request at a time
        self._at = float("-inf")
        self._latest: dict[str, Any] | None = None  # replaced whole, never mutated
        self._refreshing = False
        self._submitted: dict[str, Any] = {}  # job id -> info of a submit the list may lack
        self._flag = threading.Lock()  # guards _refreshing
        self._cpus = (float("-inf"), 0.0)  # (when read, CPUs)
        self._logs: dict[str, str] = {}  # submission id -> tail of a finished driver's log

    def _refresh(self) -> dict[str, Any]:
        with self._lock:
            latest: dict[str, Any] = {}
            for info in _unreachable_is_503(self.client.list_jobs):
                job_id = (info.metadata or {}).get(JOB_METADATA_KEY)
                if job_id is None:
                    continue
                seen = latest.get(job_id)
                if seen is None or (info.start_time or 0) >= (seen.start_time or 0):
                    latest[job_id] = info
            for job_id, info in list(self._submitted.items()):  # until a list shows them
                listed = latest.get(job_id)
                if listed is not None and listed.submission_id == info.submission_id:
                    self._submitted.pop(job_id, None)
                else:  # not listed yet, or the list still has the id's previous run
                    latest[job_id] = info
            self._latest, self._at = latest, time.monotonic()
            return latest

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        except Exception:  # Ray unreachable: serve the last list, retry after ttl
            self._at = time.monotonic()
        finally:
            self._refreshing = False

    def snapshot(self) -> dict[str, Any] | None:
        """The last list (None before the first), never blocking; past ``ttl`` one
        background refresh starts."""
        if self._latest is not None and time.monotonic() - self._at > self.ttl:
            with self._flag:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return self._latest

    def latest(self, *, fresh: bool = False) -> dict[str, Any]:
        """The most recent Ray submission of each storyline job, by storyline job id;
        ``fresh`` (submit, cancel) asks Ray now. Read-only: shared between requests."""
        if fresh:
            return self._refresh()
        known = self.snapshot()
        return known if known is not None else self._refresh()

    def cluster_cpus(self) -> float | None:
        """CPUs of the cluster's live nodes (re-read every 30 s); None if Ray will not say."""
        from ray.util.state import list_nodes

        at, cpus = self._cpus
        if time.monotonic() - at > 30:
            try:
                nodes = list_nodes(address=self.address, filters=[("state", "=", "ALIVE")])
            except Exception:  # the state API is optional to us: the driver checks again
                return None
            cpus = sum(float((n.resources_total or {}).get("CPU", 0)) for n in nodes)
            self._cpus = (time.monotonic(), cpus)
        return cpus

    def driver_error(self, info: Any, *, lines: int = 20) -> str | None:
        """Why a stopped driver failed: Ray's message, else the last lines of its log."""
        message = (getattr(info, "message", None) or "").strip()
        if "\n" in message or getattr(info, "submission_id", None) is None:
            return _tail(message, lines) or None
        logs = self._logs.get(info.submission_id)
        if logs is None:
            try:
                logs = _tail(self.client.get_job_logs(info.submission_id), lines)
            except Exception:  # logs gone with the head, or never written: Ray's word only
                logs = ""
            if len(self._logs) > 1000:
                self._logs.clear()
            self._logs[info.submission_id] = logs
        return "\n".join(p for p in (message, logs) if p) or None

    def submit(
        self, *, job_id: str, entrypoint: str, metadata: dict[str, str], runtime_env: dict | None
    ) -> str:
        submission_id = f"storyline-{job_id}-{os.urandom(4).hex()}"
        for attempt in range(AGENT_WAIT_S):
            try:
                self.client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=submission_id,
                    metadata={JOB_METADATA_KEY: job_id, **metadata},
                    runtime_env=runtime_env,
                )
                break
            except RuntimeError as exc:
                # a head just started has no job agent for a few seconds; Ray says retry
                if "No available agent" not in str(exc) or attempt == AGENT_WAIT_S - 1:
                    _unreachable_is_503(_reraise, exc)
                time.sleep(1.0)
        # the next poll sees the new job: one small request, not the whole list again
        info = _unreachable_is_503(self.client.get_job_info, submission_id)
        self._submitted[job_id] = info
        self._latest = {**(self._latest or {}), job_id: info}
        return submission_id

    def stop(self, submission_id: str) -> bool:
        stopped = _unreachable_is_503(self.client.stop_job, submission_id)
        self._refresh()
        return bool(stopped)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-4000:]


def _unreachable_is_503(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Ray's job server errors as a 503 that says so, never a 500."""
    try:
        return call(*args, **kwargs)
    except (ConnectionError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Ray's job server did not answer ({type(exc).__name__}: {first}); retry shortly",
        ) from exc


_bearer = HTTPBearer(auto_error=False, description="STORYLINE_TOKEN")


# dependencies are async: they never block, and a sync one costs a thread hop per request
async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_roots(request: Request) -> Roots:
    return request.app.state.roots


async def get_ray(request: Request) -> RayJobs:
    ray_jobs = getattr(request.app.state, "ray", None)
    if ray_jobs is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Ray is not connected yet")
    return ray_jobs


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
RootsDep = Annotated[Roots, Depends(get_roots)]
RayDep = Annotated[RayJobs, Depends(get_ray)]


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <STORYLINE_TOKEN>``."""
    expected = settings.token.get_secret_value().encode()
    given = (credentials.credentials if credentials else "").encode()
    if not credentials or not secrets.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token: send 'Authorization: Bearer $STORYLINE_TOKEN'",
            headers={"WWW-Authenticate": "Bearer"},
        )
