"""What the handlers depend on: the token check, the roots, and Ray's job client.

None of it holds job state: progress is in the stores, the job-to-store mapping in Ray's
job metadata (or found under the roots when Ray has forgotten the job).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import ServiceSettings

JOB_METADATA_KEY = "storyline_job"


def _is_url(value: str) -> bool:
    return "://" in value


class Roots:
    """The folders (or URL prefixes) the server may touch; every client path is checked."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        if not roots:
            raise ValueError("give at least one --root folder")
        self.urls = tuple(r.rstrip("/") + "/" for r in roots if _is_url(r))
        self.paths = tuple(Path(r).resolve() for r in roots if not _is_url(r))

    def check(self, value: str, what: str) -> str:
        """``value`` made absolute, or a 403 naming the roots."""
        if _is_url(value):
            if any(value.startswith(u) for u in self.urls):
                return value
        else:
            path = Path(value).resolve()  # resolves ``..`` and symlinks before the check
            if any(path == root or path.is_relative_to(root) for root in self.paths):
                return str(path)
        allowed = ", ".join([*map(str, self.paths), *self.urls])
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{what} {value!r} is outside the server's roots ({allowed})",
        )

    def find_store(self, job_id: str) -> str | None:
        """A store under the roots holding ``jobs/<job_id>``: the root itself or one level
        down (``ROOT/NAME.zarr``); for jobs Ray no longer remembers (a restarted head)."""
        for root in self.paths:
            for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
                if (candidate / "jobs" / job_id / "zarr.json").is_file():
                    return str(candidate)
        return None


class RayJobs:
    """Ray's JobSubmissionClient, with the job list reused for ``ttl`` seconds so that many
    pollers cost the Ray head one request every ``ttl`` seconds."""

    def __init__(self, address: str, *, ttl: float = 2.0) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        self.client = JobSubmissionClient(address)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._latest: dict[str, Any] = {}

    def latest(self, *, fresh: bool = False) -> dict[str, Any]:
        """The most recent Ray submission of each storyline job, by storyline job id."""
        with self._lock:
            if fresh or time.monotonic() - self._at > self.ttl:
                latest: dict[str, Any] = {}
                for info in self.client.list_jobs():
                    job_id = (info.metadata or {}).get(JOB_METADATA_KEY)
                    if job_id is None:
                        continue
                    seen = latest.get(job_id)
                    if seen is None or (info.start_time or 0) >= (seen.start_time or 0):
                        latest[job_id] = info
                self._latest, self._at = latest, time.monotonic()
            return dict(self._latest)

    def submit(
        self, *, job_id: str, entrypoint: str, metadata: dict[str, str], runtime_env: dict | None
    ) -> str:
        submission_id = f"storyline-{job_id}-{os.urandom(4).hex()}"
        self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            metadata={JOB_METADATA_KEY: job_id, **metadata},
            runtime_env=runtime_env,
        )
        with self._lock:
            self._at = float("-inf")  # the next read sees the new job
        return submission_id

    def stop(self, submission_id: str) -> bool:
        stopped = self.client.stop_job(submission_id)
        with self._lock:
            self._at = float("-inf")
        return bool(stopped)


_bearer = HTTPBearer(auto_error=False, description="STORYLINE_TOKEN")


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_roots(request: Request) -> Roots:
    return request.app.state.roots


def get_ray(request: Request) -> RayJobs:
    ray_jobs = getattr(request.app.state, "ray", None)
    if ray_jobs is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Ray is not connected yet")
    return ray_jobs


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
RootsDep = Annotated[Roots, Depends(get_roots)]
RayDep = Annotated[RayJobs, Depends(get_ray)]


def require_token(
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
