"""Each job's rendered summary, kept until its record changes.

A record is rewritten every ~2 s while its job runs and never after, yet dashboards poll it
many times a second: parsing and validating it per request was the API's whole cost under
load. A summary is reused while the record file's (mtime, size, inode) and Ray's view of
the job are unchanged; records behind URLs are re-read at most once a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..extractor.roots import is_url
from .models import JobProgress

MAX_JOBS = 4096  # summaries kept, least recently used dropped first
REMOTE_TTL_S = 1.0


def record_stamp(store: str | None, job_id: str) -> tuple[Any, ...]:
    """What changes whenever the job's record does (a local stat, or a 1 s tick)."""
    if store is None:
        return ("no-store",)
    if is_url(store):
        return ("tick", int(time.monotonic() / REMOTE_TTL_S))
    try:
        st = os.stat(os.path.join(store, "jobs", job_id, "zarr.json"))
    except OSError:
        return ("absent",)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def ray_stamp(info: Any) -> tuple[Any, ...]:
    if info is None:
        return ()
    return (info.submission_id, str(info.status), info.message)


class Summaries:
    """(job id, store) -> (stamp, summary, its JSON), least recently used dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str | None], tuple[Any, JobProgress, bytes]] = (
            OrderedDict()
        )

    def cached(self, job_id: str, store: str | None, info: Any) -> tuple[JobProgress, bytes] | None:
        """The summary if nothing changed since it was made; cheap (a stat), never blocks."""
        stamp = (record_stamp(store, job_id), ray_stamp(info))
        with self._lock:
            item = self._items.get((job_id, store))
            if item is None or item[0] != stamp:
                return None
            self._items.move_to_end((job_id, store))
            return item[1], item[2]

    def render(
        self,
        job_id: str,
        store: str | None,
        info: Any,
        make: Callable[[], JobProgress],
    ) -> tuple[JobProgress, bytes]:
        """Make the summary (reads the record: blocking) and keep it with its stamp.

        The stamp is taken before reading, so a record rewritten meanwhile is read again by
        the next request rather than served stale.
        """
        stamp = (record_stamp(store, job_id), ray_stamp(info))
        progress = make()
        body = progress.model_dump_json().encode()
        with self._lock:
            self._items[(job_id, store)] = (stamp, progress, body)
            self._items.move_to_end((job_id, store))
            while len(self._items) > MAX_JOBS:
                self._items.popitem(last=False)
        return progress, body

    def get(
        self, job_id: str, store: str | None, info: Any, make: Callable[[], JobProgress]
    ) -> JobProgress:
        hit = self.cached(job_id, store, info)
        return hit[0] if hit is not None else self.render(job_id, store, info, make)[0]
