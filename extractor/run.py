"""Extract manifest entries into a store: the per-video unit, and a single-process runner.

:func:`extract_entry` is what every worker runs, in this process or in a Ray actor: it
never raises for a bad video, it returns a typed :class:`VideoOutcome` with the reason.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tqdm import tqdm

from ..store import COMPLETE, FeatureStore
from ..store.index import IndexWriter
from .decode import VideoError
from .encoder import Encoder
from .manifest import ManifestEntry
from .pipeline import ExtractionSettings, MetaSink, extract_video
from .remote import local_video

Status = Literal["complete", "skipped", "failed"]


@dataclass(frozen=True)
class VideoOutcome:
    """How one video of a run ended. ``error`` is one line a person can act on."""

    video_id: str
    source: str
    status: Status
    shots: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class RunSummary:
    outcomes: list[VideoOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes)

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, VideoError):
        return str(exc)
    text = str(exc).strip().splitlines()
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = (
        f" (at {where.name}, {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    )
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}{place}"


def video_attrs(
    entry: ManifestEntry, settings: ExtractionSettings, encoder: Encoder
) -> dict[str, object]:
    """Attributes written when a video is first created: where it came from and how."""
    return {
        "source": entry.video,
        "tags": entry.tags(),
        "settings": settings.to_attrs(),
        "encoder": {
            "name": encoder.name,
            "id": encoder.id,
            "preprocessing": encoder.preprocessing.to_dict(),
        },
    }


def extract_entry(
    entry: ManifestEntry,
    store: FeatureStore,
    encoder: Encoder,
    settings: ExtractionSettings,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_meta: MetaSink | None = None,
) -> VideoOutcome:
    """Extract one video into the store, or record why it failed. Never raises for the video.

    A remote video (s3://...) is copied to a local spool file first, removed afterwards.
    """
    info = store.status(entry.id)
    if (
        info is not None
        and info.status == COMPLETE
        and encoder.name in info.attrs.get("features", {})
    ):
        return VideoOutcome(entry.id, entry.video, "skipped", shots=info.n_shots or 0)
    started = time.perf_counter()
    attrs = video_attrs(entry, settings, encoder)
    writer = store.begin_video(entry.id, attrs=attrs)
    local = entry.video
    try:
        with local_video(entry.video) as local:
            result = extract_video(
                local,
                encoder,
                settings,
                known_shots=writer.existing_shots(),
                on_frames=writer.append_frames if settings.store_frames else None,
                on_progress=on_progress,
                on_meta=on_meta,
            )
        writer.finish(
            shots=result.shots,
            features=result.features,
            encoder_name=encoder.name,
            encoder_id=encoder.id,
            attrs={**attrs, **result.meta.to_attrs(), "source": entry.video},
        )
    except Exception as exc:
        error = _one_line(exc)
        if local != entry.video:  # name the video, not its spool file
            error = error.replace(local, entry.video)
        writer.abort()
        store.mark_failed(entry.id, source=entry.video, error=error)
        return VideoOutcome(
            entry.id, entry.video, "failed", seconds=time.perf_counter() - started, error=error
        )
    return VideoOutcome(
        entry.id,
        entry.video,
        "complete",
        shots=len(result.shots),
        frames=result.meta.frame_count,
        seconds=time.perf_counter() - started,
    )


def index_outcome(index: IndexWriter, outcome: VideoOutcome, encoder: str) -> None:
    """Tell the store's index how a video ended (the run's one writer does this)."""
    if outcome.status == "failed":
        index.failed(outcome.video_id, outcome.error or "failed (no reason given)")
    else:
        index.complete(
            outcome.video_id, n_shots=outcome.shots, encoder=encoder, source=outcome.source
        )


def extract_all(
    entries: Sequence[ManifestEntry],
    store: FeatureStore,
    encoder: Encoder,
    settings: ExtractionSettings,
    *,
    progress: bool = True,
) -> RunSummary:
    """Extract every entry in this process, one after the other, with a progress bar."""
    store.register_encoder(encoder.name, encoder.id)
    index = IndexWriter(store)
    index_writes, store.index_writes = store.index_writes, False  # batched by `index` instead
    summary = RunSummary()
    started = time.perf_counter()
    frames = 0
    with tqdm(total=len(entries), unit="video", disable=not progress, dynamic_ncols=True) as bar:

        def on_progress(n: int) -> None:
            nonlocal frames
            frames += n
            elapsed = time.perf_counter() - started
            bar.set_postfix(frames_per_s=f"{frames / max(elapsed, 1e-9):.0f}", refresh=False)

        try:
            for entry in entries:
                outcome = extract_entry(entry, store, encoder, settings, on_progress=on_progress)
                summary.outcomes.append(outcome)
                index_outcome(index, outcome, encoder.name)
                index.flush()
                bar.set_postfix(
                    frames_per_s=f"{frames / max(time.perf_counter() - started, 1e-9):.0f}",
                    failed=summary.count("failed"),
                    refresh=False,
                )
                bar.update(1)
        finally:
            index.flush(force=True)
            store.index_writes = index_writes
    summary.seconds = time.perf_counter() - started
    return summary
