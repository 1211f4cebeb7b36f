"""The store's index: which videos are complete (and which failed), in one small document.

Opening a store of 10,000 videos by walking ``videos/`` costs a read per video, which in
object storage is minutes. Instead the one writer of a run (a job's driver, or the
single-process runner) records each video it saw finish, and readers
(:meth:`FeatureStore.video_ids`, ``storyline info``, the trainers' loaders) read this one
document. Layout, as attributes of the group ``index/`` (plain ``zarr`` can read it):

    {"storyline_index": 1, "updated": <unix time>,
     "videos": {video_id: {"n_shots": int, "features": [encoder names], "source": str}},
     "failed": {video_id: "reason"}}

Why readers never see a partial video: an id enters ``videos`` only after the worker has
set the video's completion mark, and a complete video is never made incomplete again
(re-extracting it for another encoder keeps it complete, and its new encoder is listed only
once that encoder's features are complete). A killed writer loses at most its last few
seconds of index entries: the index then lists fewer videos than are complete, never more,
and the next run over them (which skips them as complete) adds them back.
``storyline info --reindex`` rebuilds it from the videos themselves.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from zarr.errors import ContainsGroupError

if TYPE_CHECKING:
    from .feature_store import FeatureStore

INDEX_GROUP = "index"
INDEX_VERSION = 1


def read_index(store: FeatureStore) -> dict[str, Any] | None:
    """The index document (one small read), or None for a store that has none yet."""
    try:
        group = store.root[INDEX_GROUP]
    except KeyError:
        return None
    attrs = group.attrs.asdict()
    if "storyline_index" not in attrs:
        return None
    attrs.setdefault("videos", {})
    attrs.setdefault("failed", {})
    return attrs


def scan_index(store: FeatureStore) -> dict[str, Any]:
    """Build the index by reading every video's attributes: one read per video."""
    from .feature_store import COMPLETE, FAILED

    videos: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for info in store.iter_videos():
        if info.status == COMPLETE:
            videos[info.id] = _entry(info.n_shots or 0, info.attrs.get("features", {}), info)
        elif info.status == FAILED:
            failed[info.id] = info.error or "failed (no reason given)"
    return {"storyline_index": INDEX_VERSION, "videos": videos, "failed": failed}


def _entry(n_shots: int, features: Any, info: Any = None, source: str | None = None) -> dict:
    if info is not None:
        source = info.attrs.get("source")
    return {"n_shots": int(n_shots), "features": sorted(features), "source": source}


def write_index(store: FeatureStore, document: dict[str, Any]) -> None:
    try:
        group = store.root.require_group(INDEX_GROUP)
    except ContainsGroupError:  # created by another writer just now
        group = store.root[INDEX_GROUP]
    document = {**document, "storyline_index": INDEX_VERSION, "updated": time.time()}
    group.attrs.put(document)  # one JSON write: replaces the document whole


class IndexWriter:
    """Collects the videos a run saw finish and merges them into the index now and then.

    ``flush`` re-reads the index before writing, so entries another writer added since are
    kept (two drivers on one store lose an entry only if they flush in the same instant;
    the next run over that video adds it back).
    """

    def __init__(self, store: FeatureStore, *, interval: float = 2.0) -> None:
        self.store = store
        self.interval = interval
        self._complete: dict[str, tuple[int, str, str | None]] = {}
        self._failed: dict[str, str] = {}
        self._last = 0.0
        self._cost = 0.0  # seconds the last flush took

    def complete(self, video_id: str, *, n_shots: int, encoder: str, source: str | None) -> None:
        """``video_id`` is complete with features of ``encoder`` (its mark is written)."""
        self._complete[video_id] = (n_shots, encoder, source)
        self._failed.pop(video_id, None)

    def failed(self, video_id: str, error: str) -> None:
        self._failed[video_id] = error
        self._complete.pop(video_id, None)

    @property
    def dirty(self) -> bool:
        return bool(self._complete or self._failed)

    def flush(self, *, force: bool = False) -> bool:
        """Merge what changed into the index if ``interval`` passed (or ``force``).

        At most every ``10 x`` the last flush's duration too: rewriting the document of a
        large store (~1 MB at 10,000 videos) then takes at most a tenth of the writer's time.
        """
        now = time.monotonic()
        wait = max(self.interval, 10 * self._cost)
        if not self.dirty or (not force and now - self._last < wait):
            return False
        document = read_index(self.store)
        if document is None:  # the first index of a store: start from what it holds
            document = scan_index(self.store)
        videos, failed = document["videos"], document["failed"]
        for vid, (n_shots, encoder, source) in self._complete.items():
            old = videos.get(vid)
            features = set(old["features"]) if old else set()
            videos[vid] = _entry(n_shots, features | {encoder}, source=source)
            failed.pop(vid, None)
        for vid, error in self._failed.items():
            if vid not in videos:  # a complete video is never marked failed
                failed[vid] = error
        write_index(self.store, document)
        self._complete.clear()
        self._failed.clear()
        self._last = time.monotonic()
        self._cost = self._last - now
        return True
