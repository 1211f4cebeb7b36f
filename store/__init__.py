"""The Zarr feature store: layout, atomic per-video writes, job records."""

from .errors import EncoderMismatchError, StoreError, VideoNotFoundError
from .feature_store import COMPLETE, FAILED, FeatureStore, VideoInfo, VideoWriter

__all__ = [
    "COMPLETE",
    "FAILED",
    "EncoderMismatchError",
    "FeatureStore",
    "StoreError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoWriter",
]
