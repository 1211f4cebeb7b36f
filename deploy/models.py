"""Request and response bodies of the API, kept apart from the store's job records."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
ENCODER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# a path or URL: printable, no NUL or other control characters (the OS refuses NUL anyway)
PATH_PATTERN = r"^[^\x00-\x1f\x7f]+$"
PATH_MAX = 4096
State = Literal["pending", "running", "succeeded", "failed", "cancelled"]
VideoStatus = Literal["pending", "running", "complete", "failed"]


class JobRequest(BaseModel):
    """A job to submit. Paths must lie within the server's roots; no command is accepted."""

    # the schema says what submit checks: a named encoder needs a checkpoint, 'random' none
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"encoder": {"const": "random"}, "checkpoint": {"type": "null"}}},
                {
                    "required": ["encoder", "checkpoint"],
                    "properties": {
                        "encoder": {"not": {"const": "random"}},
                        "checkpoint": {"type": "string"},
                    },
                },
            ]
        },
    )

    manifest: str = Field(
        max_length=PATH_MAX,
        pattern=PATH_PATTERN,
        description="manifest path or URL; every video it lists must lie within the roots",
    )
    store: str = Field(
        max_length=PATH_MAX, pattern=PATH_PATTERN, description="Zarr store path or URL"
    )
    encoder: str = Field(
        default="random",
        pattern=ENCODER_PATTERN,
        description="'random' (no checkpoint), or the name a checkpoint's features go under",
    )
    checkpoint: str | None = Field(
        default=None,
        max_length=PATH_MAX,
        pattern=PATH_PATTERN,
        description="encoder checkpoint path; required with any encoder but 'random'",
    )
    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)
    num_gpus: float | None = Field(default=None, ge=0, le=8, description="GPU share per actor")
    workers: int | None = Field(
        default=None, ge=1, le=10_000, description="actors; at most the cluster's CPUs"
    )
    input_size: int | None = Field(default=None, ge=64, le=512, description="random encoder")
    detector: Literal["adaptive", "content", "transnetv2"] | None = Field(  # extractor/shots.py
        default=None, description="shot detector (default adaptive; transnetv2 on GPU actors)"
    )


class Problem(BaseModel):
    """Every error body: what went wrong and what to do (a list for malformed requests)."""

    detail: str | list[dict[str, Any]]


class JobCreated(BaseModel):
    id: str


class Counts(BaseModel):
    pending: int = 0
    running: int = 0
    complete: int = 0
    failed: int = 0


class VideoInFlight(BaseModel):
    """A video being extracted now, as its actor last reported it."""

    id: str
    source: str | None = None
    frames: int | None = None  # decoded so far
    frame_count: int | None = None  # None until probed
    progress: float | None = None  # in [0, 1]


class JobProgress(BaseModel):
    """A job as the store's record and Ray's job status describe it."""

    id: str
    state: State
    ray_status: str | None = None  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    counts: Counts = Counts()
    n_videos: int | None = None
    skipped: int = 0  # already complete in the store when the run started
    shots: int = 0
    frames: int = 0
    frames_in_flight: int = 0  # decoded so far of the videos in flight
    in_flight: list[VideoInFlight] = []
    frames_per_s: float = 0.0
    eta_s: float | None = None
    manifest: str | None = None
    store: str | None = None
    encoder: dict[str, str] | None = None
    started: float | None = None
    ended: float | None = None
    updated: float | None = None
    error: str | None = Field(
        default=None, description="why the job failed: Ray's message or the driver's last lines"
    )


class JobList(BaseModel):
    jobs: list[JobProgress]


class Video(BaseModel):
    id: str
    source: str
    status: VideoStatus
    error: str | None = None


class VideoPage(BaseModel):
    total: int
    offset: int
    limit: int
    videos: list[Video]


class Cancelled(BaseModel):
    id: str
    ray_status: str | None
    stopping: bool
