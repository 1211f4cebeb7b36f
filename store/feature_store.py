"""The Zarr v3 feature store: one group per video, features per encoder, completion last.

Layout (plain ``zarr`` can read it; see README):

    /                              attrs: {"storyline": 1, "encoders": {name: encoder_id}}
    videos/<video_id>/             attrs: source, fps, frame_count, width, height, duration,
                                          tags, settings, status, error, features
    videos/<video_id>/shots        int64   (n_shots, 2)  [start, end) frame numbers
    videos/<video_id>/features/<encoder_name>
                                   float16 (n_shots, 1024)
    videos/<video_id>/frames       uint8   (n_shots, m, S, S, 3)   only with --frames
    jobs/<job_id>/                 job records (written by a job's driver only)
    index/                         attrs: the complete (and failed) videos, for readers
                                          that must not read every video (store/index.py)

A video is complete when its ``status`` attribute is ``"complete"``; features of encoder
``E`` are complete when ``E`` is a key of the video's ``features`` attribute. Both marks are
written after every array they cover, in one attribute write, so a reader never sees a
partial video: an interrupted write leaves a video that a re-run redoes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr
import zarr.codecs
from zarr.errors import ContainsGroupError, GroupNotFoundError

from .errors import EncoderMismatchError, StoreError, VideoNotFoundError
from .index import IndexWriter, read_index, scan_index, write_index
from .locks import StoreLock, store_lock

FORMAT_VERSION = 1
COMPLETE, FAILED, WRITING = "complete", "failed", "writing"
FEATURE_CHUNK_SHOTS = 256  # 256 x 1024 float16 = 512 KiB per chunk before compression
FRAME_CHUNK_SHOTS = 8


def _compressor() -> zarr.codecs.BloscCodec:
    return zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


@dataclass(frozen=True)
class VideoInfo:
    """What the store knows about one video, from its attributes alone."""

    id: str
    status: str
    n_shots: int | None
    error: str | None
    attrs: dict[str, Any]


class FeatureStore:
    """Reader and per-video writer for a storyline Zarr store (local path or fsspec URL).

    Readers (trainers, the API) only ever see complete videos unless they ask otherwise.
    """

    def __init__(
        self,
        url: str,
        *,
        mode: Literal["r", "a"] = "a",
        storage_options: dict[str, Any] | None = None,
        index_writes: bool = True,
    ) -> None:
        """``index_writes=False``: this handle's video writes leave the index alone, because
        one writer (a job's driver, :class:`~.index.IndexWriter`) records them for it."""
        self.url = str(url)
        self.mode = mode
        self.index_writes = index_writes
        try:
            self.root = zarr.open_group(
                self.url, mode=mode, zarr_format=3, storage_options=storage_options
            )
        except (FileNotFoundError, GroupNotFoundError) as exc:
            raise StoreError(
                f"no storyline store at {self.url}: run `storyline extract --store {self.url} ...`"
                " first"
            ) from exc
        if mode != "r" and "storyline" not in self.root.attrs:
            with store_lock(self.url, "root"):
                if "storyline" not in self._fresh_root_attrs():  # another writer may have
                    self.root.attrs.update({"storyline": FORMAT_VERSION, "encoders": {}})
            self._writable_videos()

    # ------------------------------------------------------------------ reading
    def encoders(self) -> dict[str, str]:
        """Encoder names registered in this store, with their ids."""
        return dict(self.root.attrs.get("encoders", {}))

    def _videos_group(self) -> zarr.Group | None:
        try:
            return self.root["videos"]  # type: ignore[return-value]
        except KeyError:
            return None

    def iter_videos(self) -> Iterator[VideoInfo]:
        """Every video group in the store, whatever its status, in id order."""
        videos = self._videos_group()
        if videos is None:
            return
        for vid, group in sorted(videos.groups()):
            attrs = dict(group.attrs)
            shots = attrs.get("n_shots")
            yield VideoInfo(vid, attrs.get("status", WRITING), shots, attrs.get("error"), attrs)

    def index(self) -> dict[str, Any] | None:
        """The index of complete and failed videos (one small read), None if there is none."""
        return read_index(self)

    def video_ids(self, *, encoder: str | None = None) -> list[str]:
        """Ids of complete videos (with complete features of ``encoder``, if given), sorted.

        From the store's index: one read, however many videos. A store without an index
        (written by hand, or by storyline before the index) is walked video by video.
        """
        index = self.index()
        if index is None:
            return [
                v.id
                for v in self.iter_videos()
                if v.status == COMPLETE
                and (encoder is None or encoder in v.attrs.get("features", {}))
            ]
        return sorted(
            vid
            for vid, entry in index["videos"].items()
            if encoder is None or encoder in entry["features"]
        )

    def reindex(self) -> dict[str, Any]:
        """Rebuild the index from the videos themselves (one read per video)."""
        document = scan_index(self)
        write_index(self, document)
        return document

    def _group(self, video_id: str) -> zarr.Group:
        videos = self._videos_group()
        try:
            group = videos[video_id] if videos is not None else None
        except KeyError:
            group = None
        if group is None or group.attrs.get("status") != COMPLETE:
            raise VideoNotFoundError(f"no complete video {video_id!r} in {self.url}")
        return group  # type: ignore[return-value]

    def attrs(self, video_id: str) -> dict[str, Any]:
        """A complete video's attributes (source, fps, frame count, size, tags, settings...)."""
        return dict(self._group(video_id).attrs)

    def shots(self, video_id: str) -> np.ndarray:
        """(n_shots, 2) int64 [start, end) frame numbers of a complete video."""
        return self._group(video_id)["shots"][:]

    def features(self, video_id: str, encoder: str) -> np.ndarray:
        """(n_shots, 1024) float16 shot features of one encoder."""
        group = self._group(video_id)
        if encoder not in group.attrs.get("features", {}):
            raise VideoNotFoundError(
                f"video {video_id!r} has no features of encoder {encoder!r}; it has "
                f"{sorted(group.attrs.get('features', {}))}: extract it with --encoder {encoder}"
            )
        return group[f"features/{encoder}"][:]

    def frames(self, video_id: str) -> zarr.Array:
        """The lazily read (n_shots, m, S, S, 3) uint8 frame cache of a complete video."""
        group = self._group(video_id)
        if "frames" not in group:
            raise VideoNotFoundError(
                f"video {video_id!r} has no cached frames: re-extract it with --frames"
            )
        return group["frames"]  # type: ignore[return-value]

    def status(self, video_id: str) -> VideoInfo | None:
        """The video's status, or None when the store has never seen it."""
        videos = self._videos_group()
        if videos is None or video_id not in videos:
            return None
        attrs = dict(videos[video_id].attrs)
        return VideoInfo(
            video_id, attrs.get("status", WRITING), attrs.get("n_shots"), attrs.get("error"), attrs
        )

    def is_complete(self, video_id: str, encoder: str) -> bool:
        info = self.status(video_id)
        return (
            info is not None
            and info.status == COMPLETE
            and encoder in info.attrs.get("features", {})
        )

    # ------------------------------------------------------------------ writing
    def _writable_videos(self) -> zarr.Group:
        """The ``videos`` group, created if missing. Workers of one job start together: when
        two create it at once, the loser takes the winner's (zarr raises for the second)."""
        try:
            return self.root.require_group("videos")
        except ContainsGroupError:
            return self.root["videos"]  # type: ignore[return-value]

    def _fresh_root_attrs(self) -> dict[str, Any]:
        """The root's attributes as stored now (``self.root`` holds those read at open)."""
        return dict(zarr.open_group(self.url, mode="r", zarr_format=3).attrs)

    def register_encoder(self, name: str, encoder_id: str) -> None:
        """Bind an encoder name to an id, refusing a name that already holds another id.

        Called by each job's driver before its workers write. Two jobs on one store may
        register at once: the read-modify-write runs under the store's root lock, on the
        attributes as stored, so neither registration is lost.
        """
        with store_lock(self.url, "root"):
            attrs = self._fresh_root_attrs()
            encoders = dict(attrs.get("encoders", {}))
            stored = encoders.get(name)
            if stored is not None and stored != encoder_id:
                raise EncoderMismatchError(name, stored, encoder_id)
            if stored is None:
                self.root.attrs.put({**attrs, "encoders": {**encoders, name: encoder_id}})

    def check_encoder(self, name: str, encoder_id: str) -> None:
        stored = self.encoders().get(name)
        if stored is not None and stored != encoder_id:
            raise EncoderMismatchError(name, stored, encoder_id)

    def begin_video(self, video_id: str, *, attrs: dict[str, Any]) -> VideoWriter:
        """Start (re)writing a video. A complete video keeps its shots and other encoders'
        features; anything else under this id is stale and is removed first.

        The writer holds the video's lock until it finishes or aborts: a second job on the
        same video (another encoder) waits, then adds its features to the complete video
        instead of removing the first one's work in progress.
        """
        lock = StoreLock(self.url, f"video-{video_id}")
        try:
            videos = self._writable_videos()
            existing = videos.get(video_id)
            fresh = existing is None or existing.attrs.get("status") != COMPLETE
            if fresh:
                if existing is not None:
                    del videos[video_id]
                existing = videos.create_group(video_id, attributes={**attrs, "status": WRITING})
        except BaseException:
            lock.release()
            raise
        return VideoWriter(
            existing,  # type: ignore[arg-type]
            fresh=fresh,
            on_complete=self._index_complete,
            lock=lock,
        )

    def _index_complete(
        self, video_id: str, n_shots: int, encoder: str, source: str | None
    ) -> None:
        """A direct write keeps an existing index current (a driver batches this instead)."""
        if not self.index_writes or read_index(self) is None:
            return
        writer = IndexWriter(self)
        writer.complete(video_id, n_shots=n_shots, encoder=encoder, source=source)
        writer.flush(force=True)

    def mark_failed(self, video_id: str, *, source: str, error: str) -> None:
        """Record a failed video, unless an earlier run completed it (never damage that)."""
        with store_lock(self.url, f"video-{video_id}"):
            videos = self._writable_videos()
            if video_id in videos:
                group = videos[video_id]
                if group.attrs.get("status") == COMPLETE:
                    return
                del videos[video_id]
            videos.create_group(
                video_id, attributes={"source": source, "status": FAILED, "error": error}
            )
        if self.index_writes and read_index(self) is not None:
            writer = IndexWriter(self)
            writer.failed(video_id, error)
            writer.flush(force=True)


class VideoWriter:
    """Writes one video's arrays; :meth:`finish` sets the completion mark last."""

    def __init__(
        self,
        group: zarr.Group,
        *,
        fresh: bool,
        on_complete: Callable[[str, int, str, str | None], None] | None = None,
        lock: StoreLock | None = None,
    ) -> None:
        self.group = group
        self.fresh = fresh
        self.on_complete = on_complete
        self._frames: zarr.Array | None = None
        self._lock = lock  # the video's, released by finish or abort

    def abort(self) -> None:
        """Undo what this writer added to a video that was already complete."""
        try:
            if not self.fresh and self._frames is not None:
                del self.group["frames"]
                self._frames = None
        finally:
            if self._lock is not None:
                self._lock.release()

    def existing_shots(self) -> np.ndarray | None:
        """Shots of a video already complete for another encoder: reuse, never redetect."""
        return None if self.fresh else self.group["shots"][:]

    @property
    def wants_frames(self) -> bool:
        return self.fresh or "frames" not in self.group

    def append_frames(self, frames: np.ndarray) -> None:
        """Append sampled frames (k, m, S, S, 3) uint8 as shots close: memory stays flat."""
        if not self.wants_frames and self._frames is None:
            return
        if self._frames is None:
            if "frames" in self.group:
                del self.group["frames"]
            self._frames = self.group.create_array(
                "frames",
                shape=(0, *frames.shape[1:]),
                dtype="uint8",
                chunks=(FRAME_CHUNK_SHOTS, *frames.shape[1:]),
                compressors=_compressor(),
            )
        self._frames.append(frames, axis=0)

    def finish(
        self,
        *,
        shots: np.ndarray,
        features: np.ndarray,
        encoder_name: str,
        encoder_id: str,
        attrs: dict[str, Any],
    ) -> None:
        """Write shots and features, then mark complete in one attribute write."""
        shots = np.asarray(shots, dtype=np.int64)
        if features.shape[0] != shots.shape[0]:
            raise ValueError(f"{features.shape[0]} feature rows for {shots.shape[0]} shots")
        if self.fresh:
            self.group.create_array(
                "shots", data=shots, chunks=(max(len(shots), 1), 2), compressors=_compressor()
            )
        elif not np.array_equal(self.group["shots"][:], shots):
            raise StoreError("shots differ from the stored shots of this video")
        if self._frames is not None and self._frames.shape[0] != shots.shape[0]:
            raise StoreError(f"{self._frames.shape[0]} frame rows for {shots.shape[0]} shots")
        self.group.require_group("features").create_array(
            encoder_name,
            data=np.asarray(features, dtype=np.float16),
            chunks=(FEATURE_CHUNK_SHOTS, features.shape[1]),
            compressors=_compressor(),
            attributes={"encoder_id": encoder_id},
            overwrite=True,
        )
        current = dict(self.group.attrs)
        feature_marks = {**current.get("features", {}), encoder_name: encoder_id}
        final = {**attrs} if self.fresh else {}
        final.update(
            {
                "n_shots": int(len(shots)),
                "features": feature_marks,
                "status": COMPLETE,
                "error": None,
            }
        )
        self.group.attrs.update(final)
        if self._lock is not None:
            self._lock.release()
        if self.on_complete is not None:
            source = (final if self.fresh else current).get("source")
            self.on_complete(self.group.basename, int(len(shots)), encoder_name, source)
