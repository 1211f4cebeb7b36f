"""What the trained encoder sees (paper 5.4, figures 6 and 7): retrieval and response plots.

Both read shot features from the store (a movie store extracted with the trained encoder's
checkpoint) and score them with the checkpoint's tag head: a shot's response to a tag is
the sigmoid of its linear score. Frames for the contact sheet come from the store's frame
cache, or are decoded from the video's source when the store has none (only the few
frames shown, one seek each).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window (servers, Ray workers, tests)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..store import FeatureStore, VideoNotFoundError  # noqa: E402
from .data import TrainerError, open_store  # noqa: E402
from .encoder_train import load_tagger  # noqa: E402

THUMB_SIDE = 160  # short side of frames decoded from source for the contact sheet


@dataclass(frozen=True)
class Hit:
    """One retrieved shot."""

    video: str
    shot: int  # index in the video's shots
    start: int  # [start, end) frame numbers
    end: int
    seconds: float | None  # start time, when the store knows the fps
    score: float  # response to the tag, in (0, 1)


class TagScorer:
    """A checkpoint's tag head over one encoder's stored shot features."""

    def __init__(self, checkpoint: str, store: FeatureStore, encoder: str | None = None) -> None:
        self.model, _, ckpt = load_tagger(checkpoint)
        self.encoder = encoder or Path(checkpoint).stem
        self.store = store
        self.vocabulary: dict[str, list[str]] = ckpt["vocabulary"]
        self.tags = [*self.vocabulary["genres"], *self.vocabulary["keywords"]]
        stored = store.encoders().get(self.encoder)
        if stored is None:
            known = ", ".join(sorted(store.encoders())) or "none"
            raise TrainerError(
                f"encoder {self.encoder!r} is not in store {store.url} (it has: {known}): "
                f"extract it with `storyline extract --store {store.url} --encoder "
                f"{self.encoder} --checkpoint {checkpoint} ...`, or pass --encoder"
            )
        if stored != ckpt["encoder_id"]:
            raise TrainerError(
                f"features {self.encoder!r} in {store.url} come from encoder {stored}, but "
                f"{checkpoint} is encoder {ckpt['encoder_id']}: its tag head only fits its own "
                "features; extract with this checkpoint under a new --encoder name"
            )

    def index(self, tag: str) -> int:
        """Head row of ``tag`` (a genre or a keyword), with the vocabulary when unknown."""
        if tag in self.tags:
            return self.tags.index(tag)
        shown = ", ".join(self.tags[:30]) + (" ..." if len(self.tags) > 30 else "")
        raise TrainerError(f"tag {tag!r} is not in the checkpoint's vocabulary: {shown}")

    @torch.no_grad()
    def scores(self, video: str) -> np.ndarray:
        """(n_shots, n_tags) responses of a video's shots."""
        feats = torch.from_numpy(self.store.features(video, self.encoder)).float()
        return torch.sigmoid(self.model.head(feats)).numpy()


def _seconds(attrs: dict[str, Any], frame: int) -> float | None:
    fps = attrs.get("fps")
    return float(frame) / float(fps) if fps else None


def select_videos(
    scorer: TagScorer,
    *,
    manifest: Sequence[str] | None = None,
    prefixes: Sequence[str] = (),
) -> list[str]:
    """The store's videos with the scorer's features, narrowed to a manifest's ids and/or
    to ids starting with one of ``prefixes``: a store may hold other videos (MovieQA
    clips beside the movies, trailers) whose shots should not compete."""
    have = scorer.store.video_ids(encoder=scorer.encoder)
    ids = have
    if manifest is not None:
        wanted = set(manifest)
        ids = [v for v in ids if v in wanted]
    if prefixes:
        ids = [v for v in ids if v.startswith(tuple(prefixes))]
    if not ids:
        chosen = " and ".join(
            ([f"{len(manifest)} manifest ids"] if manifest is not None else [])
            + ([f"prefix {', '.join(prefixes)}"] if prefixes else [])
        )
        shown = ", ".join(have[:5]) + (" ..." if len(have) > 5 else "")
        raise TrainerError(
            f"none of the {len(have)} videos with features {scorer.encoder!r} in "
            f"{scorer.store.url} matches {chosen or 'the selection'} (they are: {shown}): "
            "check --manifest / --prefix"
        )
    return ids


def retrieve(
    scorer: TagScorer, tag: str, *, top: int = 16, videos: Sequence[str] | None = None
) -> list[Hit]:
    """The ``top`` shots of the store (or of ``videos``) with the highest response to ``tag``."""
    t = scorer.index(tag)
    ids = list(videos) if videos is not None else scorer.store.video_ids(encoder=scorer.encoder)
    hits: list[Hit] = []
    for vid in ids:
        response = scorer.scores(vid)[:, t]
        shots, attrs = scorer.store.shots(vid), scorer.store.attrs(vid)
        for i in np.argsort(-response, kind="stable")[:top]:
            start, end = (int(v) for v in shots[i])
            hits.append(Hit(vid, int(i), start, end, _seconds(attrs, start), float(response[i])))
    hits.sort(key=lambda h: -h.score)
    return hits[:top]


def _decode_frames(source: str, indices: list[int]) -> list[np.ndarray]:
    """A few frames of one video, decoded at thumbnail size (decord, imported lazily)."""
    import decord

    from ..extractor.decode import decode_size

    probe = decord.VideoReader(source)
    height, width = probe[0].shape[:2]
    del probe
    w, h = decode_size(width, height, THUMB_SIDE)
    reader = decord.VideoReader(source, width=w, height=h)
    last = len(reader) - 1
    return list(reader.get_batch([min(i, last) for i in indices]).asnumpy())


def hit_frames(store: FeatureStore, hits: Sequence[Hit]) -> list[np.ndarray]:
    """One frame per hit: the cached centre frame, else the shot's middle frame decoded."""
    frames: list[np.ndarray | None] = [None] * len(hits)
    to_decode: dict[str, list[int]] = {}
    for j, hit in enumerate(hits):
        try:
            cache = store.frames(hit.video)
            frames[j] = np.asarray(cache[hit.shot, cache.shape[1] // 2])
        except VideoNotFoundError:
            to_decode.setdefault(hit.video, []).append(j)
    for vid, rows in to_decode.items():
        source = store.attrs(vid).get("source")
        if not source:
            raise TrainerError(f"video {vid!r} has no cached frames and no source to decode")
        middles = [(hits[j].start + hits[j].end - 1) // 2 for j in rows]
        try:
            decoded = _decode_frames(str(source), middles)
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            raise TrainerError(
                f"video {vid!r} has no cached frames and its source {source} cannot be "
                f"decoded ({type(exc).__name__}): extract the store with --frames"
            ) from exc
        for j, frame in zip(rows, decoded, strict=True):
            frames[j] = frame
    return [f for f in frames if f is not None]


def contact_sheet(
    frames: Sequence[np.ndarray],
    captions: Sequence[str],
    out: str | Path,
    *,
    title: str,
    columns: int = 4,
) -> Path:
    """A grid of frames with a caption under each, as a PNG."""
    if not frames:
        raise TrainerError("no shots to show")
    columns = min(columns, len(frames))
    rows = -(-len(frames) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.6 * rows + 0.6), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, frame, caption in zip(axes.flat, frames, captions, strict=False):
        ax.imshow(frame)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_retrieval(
    scorer: TagScorer,
    tag: str,
    out: str | Path,
    *,
    top: int = 16,
    json_out: str | Path | None = None,
    videos: Sequence[str] | None = None,
) -> tuple[Path, Path, list[Hit]]:
    """Contact sheet PNG and JSON of the ``top`` shots for ``tag`` (among ``videos``, by
    default every video of the store with the scorer's features)."""
    if videos is None:
        videos = scorer.store.video_ids(encoder=scorer.encoder)
    hits = retrieve(scorer, tag, top=top, videos=videos)
    frames = hit_frames(scorer.store, hits)
    captions = [
        f"{h.video} #{h.shot}"
        + (f" {h.seconds:.1f}s" if h.seconds is not None else "")
        + f"\n{h.score:.3f}"
        for h in hits
    ]
    png = contact_sheet(
        frames, captions, out, title=f"top {len(hits)} shots for '{tag}' ({scorer.encoder})"
    )
    json_path = Path(json_out) if json_out else png.with_suffix(".json")
    json_path.write_text(
        json.dumps(
            {
                "tag": tag,
                "encoder": scorer.encoder,
                "store": scorer.store.url,
                "videos_searched": len(videos),
                "hits": [asdict(h) for h in hits],
            },
            indent=2,
        )
    )
    return png, json_path, hits


def plot_response(scorer: TagScorer, video: str, tags: Sequence[str], out: str | Path) -> Path:
    """Each tag's response along the video's shots, several tags on one figure."""
    if not tags:
        raise TrainerError("give at least one tag")
    rows = [scorer.index(t) for t in tags]
    scores = scorer.scores(video)
    shots, attrs = scorer.store.shots(video), scorer.store.attrs(video)
    fps = attrs.get("fps")
    # Each shot is a step from its start to its end, so the last shot is drawn too.
    edges = np.append(shots[:, 0], shots[-1, 1]) if len(shots) else np.zeros(1)
    if fps:
        seconds = edges / float(fps)
        short = seconds[-1] < 180  # trailers in seconds, movies in minutes
        x, label = (seconds, "time (s)") if short else (seconds / 60.0, "time (minutes)")
    else:
        x, label = np.arange(len(edges)), "shot"
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for tag, t in zip(tags, rows, strict=True):
        y = np.append(scores[:, t], scores[-1, t]) if len(scores) else np.zeros(1)
        ax.plot(x, y, label=tag, linewidth=1.2, drawstyle="steps-post")
    ax.set_xlabel(label)
    ax.set_ylabel("response")
    ax.set_ylim(0, 1)
    ax.set_title(f"{video}: tag response along {len(shots)} shots ({scorer.encoder})")
    ax.legend(loc="upper right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def open_scorer(store_url: str, checkpoint: str, encoder: str | None) -> TagScorer:
    return TagScorer(checkpoint, open_store(store_url), encoder)
