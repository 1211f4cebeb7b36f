"""The Zarr feature store: layout, atomic per-video writes, job records."""

from .errors import EncoderMismatchError, StoreError, VideoNotFoundError
from .feature_store import COMPLETE, FAILED, FeatureStore, VideoInfo, VideoWriter
from .jobs import JobConflictError, JobNotFoundError, list_jobs, read_job, read_videos

__all__ = [
    "COMPLETE",
    "FAILED",
    "EncoderMismatchError",
    "FeatureStore",
    "JobConflictError",
    "JobNotFoundError",
    "StoreError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoWriter",
    "list_jobs",
    "read_job",
    "read_videos",
]
