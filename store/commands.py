"""`storyline info`: what a store holds, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from .errors import StoreError, VideoNotFoundError
from .feature_store import FeatureStore


def store_summary(store: FeatureStore, *, scan: bool = False) -> dict[str, Any]:
    """Counts by status, shots, and one line per video (with its error, if it failed).

    From the store's index (one read, however many videos) when it has one and ``scan`` is
    False; else by reading every video, which also shows videos being written.
    """
    index = None if scan else store.index()
    if index is None:
        return _scanned_summary(store)
    complete, failed = index["videos"], index["failed"]
    videos = [
        {
            "id": vid,
            "status": "complete",
            "shots": entry["n_shots"],
            "features": entry["features"],
            "source": entry.get("source"),
        }
        for vid, entry in complete.items()
    ]
    videos += [
        {"id": vid, "status": "failed", "shots": None, "error": err} for vid, err in failed.items()
    ]
    counts = {"complete": len(complete), "failed": len(failed)}
    return {
        "store": store.url,
        "encoders": store.encoders(),
        "index": True,
        "counts": {k: v for k, v in counts.items() if v},
        "shots": sum(entry["n_shots"] for entry in complete.values()),
        "videos": sorted(videos, key=lambda v: v["id"]),
    }


def _scanned_summary(store: FeatureStore) -> dict[str, Any]:
    videos = list(store.iter_videos())
    return {
        "store": store.url,
        "encoders": store.encoders(),
        "index": False,
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
        store = FeatureStore(args.store, mode="a" if args.reindex else "r")
        if args.reindex:
            document = store.reindex()
            print(
                f"indexed {len(document['videos'])} complete and {len(document['failed'])} "
                f"failed videos of {store.url}",
                file=sys.stderr,
            )
        if args.job:
            summary = job_summary(store, args.job)
        elif args.video_id:
            summary = video_summary(store, args.video_id)
        else:
            summary = store_summary(store, scan=args.scan)
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
    parser.add_argument(
        "--scan",
        action="store_true",
        help="read every video instead of the store's index (slow on object storage; also "
        "shows videos being written)",
    )
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="rebuild the index from the videos (after a writer was killed and not resumed)",
    )
    parser.set_defaults(func=run)
