"""`storyline info`: what a store holds, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from .errors import StoreError, VideoNotFoundError
from .feature_store import FeatureStore


def store_summary(store: FeatureStore) -> dict[str, Any]:
    """Counts by status, shots, and one line per video (with its error, if it failed)."""
    videos = list(store.iter_videos())
    return {
        "store": store.url,
        "encoders": store.encoders(),
        "counts": dict(Counter(v.status for v in videos)),
        "shots": sum(v.n_shots or 0 for v in videos if v.status == "complete"),
        "videos": [
            {
                "id": v.id,
                "status": v.status,
                "shots": v.n_shots,
                "features": sorted(v.attrs.get("features", {})),
                "source": v.attrs.get("source"),
                **({"error": v.error} if v.error else {}),
            }
            for v in videos
        ],
    }


def video_summary(store: FeatureStore, video_id: str) -> dict[str, Any]:
    """One video: its attributes and the shapes of its arrays."""
    info = store.status(video_id)
    if info is None:
        raise VideoNotFoundError(f"no video {video_id!r} in {store.url}")
    result: dict[str, Any] = {"id": video_id, **info.attrs}
    if info.status == "complete":
        group = store.root[f"videos/{video_id}"]
        result["arrays"] = {
            path: {"shape": list(array.shape), "dtype": str(array.dtype)}
            for path, array in sorted(group.arrays(), key=lambda kv: kv[0])
        }
        result["arrays"].update(
            {
                f"features/{name}": {"shape": list(array.shape), "dtype": str(array.dtype)}
                for name, array in group["features"].arrays()
            }
        )
    return result


def job_summary(store: FeatureStore, job_id: str) -> dict[str, Any]:
    """A job's record, with every failed video and its reason."""
    from .jobs import read_job, read_videos

    record = read_job(store.url, job_id)
    total, failed = read_videos(store.url, job_id, status="failed", limit=1_000_000)
    return {**record, "failed_videos": failed}


def run(args: argparse.Namespace) -> int:
    try:
        store = FeatureStore(args.store, mode="r")
        if args.job:
            summary = job_summary(store, args.job)
        elif args.video_id:
            summary = video_summary(store, args.video_id)
        else:
            summary = store_summary(store)
    except StoreError as exc:
        print(f"storyline info: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="what a store holds, as JSON")
    parser.add_argument("--store", required=True)
    parser.add_argument("video_id", nargs="?", help="one video's attributes and arrays")
    parser.add_argument("--job", help="one job's record: progress and failed videos")
    parser.set_defaults(func=run)
