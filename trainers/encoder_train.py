"""Learn the shot encoder from trailers (paper 4.1): video-level tags supervise BN-Inception.

Per trailer and step, n=8 shots x m=3 frames are drawn from the store's frame cache (the
extractor's ``--frames``; never video), augmented (pad-and-crop, flip), encoded, averaged
over the n*m frames, and a linear layer gives genre and keyword scores.

Loss: multi-label binary cross-entropy, genres and keywords each averaged over their tags
and summed (multi-task). The paper used a softmax over the tags; a trailer has several
genres and many keywords, and BCE scores each tag on its own, so a trailer's scores do not
compete and the per-shot scores used by retrieval and Score Average stay comparable across
videos. Frames: the extractor caches the centres of a shot's thirds; when a cache holds
more frames per shot (k = m * j), one is drawn at random within each third, as the paper
does; with k = m the centres are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..extractor.models.bninception import FEATURE_DIM, BNInception, bn_inception
from ..extractor.weights import (
    ARCHITECTURE,
    EncoderError,
    EncoderWeights,
    Preprocessing,
    read_weights,
)
from ..store import FeatureStore, VideoNotFoundError
from .checkpoint import load_checkpoint, resume_checkpoint, save_checkpoint
from .data import TrainerError, assign_splits, open_store, stable_seed, video_tags
from .loop import LoopConfig, LoopState, run
from .metrics import mean_average_precision, recall_at_k
from .tags import score_average
from .vocab import MAX_KEYWORDS, MIN_KEYWORD_VIDEOS, TagVocab

KIND = "encoder"


@dataclass(frozen=True)
class EncoderTrainConfig:
    """How the encoder is trained; saved in its checkpoint. Batch at step s depends only on
    (seed, s), so a resumed run sees the batches an uninterrupted one would have."""

    steps: int = 3000  # optimizer steps in total (a resumed run continues to this)
    batch_videos: int = 8  # trailers per step (x n x m frames through the network)
    shots_per_video: int = 8  # n: shots drawn per trailer and step (paper: 8)
    frames_per_shot: int = 3  # m: frames per shot, one per third (paper: 3)
    lr: float = 1e-3  # peak learning rate of the network (AdamW)
    head_lr_mult: float = 10.0  # the new linear layer learns faster than the trunk
    min_lr_frac: float = 0.05  # final learning rate as a fraction of the peak (cosine)
    warmup: int = 100  # steps of linear warm-up
    weight_decay: float = 1e-4  # AdamW weight decay
    keyword_weight: float = 1.0  # weight of the keyword loss next to the genre loss
    min_keyword_videos: int = MIN_KEYWORD_VIDEOS  # keywords of fewer training trailers left out
    max_keywords: int = MAX_KEYWORDS  # keep at most this many keywords (the most frequent)
    pad: float = 0.125  # pad-and-crop augmentation: reflect-pad by this fraction of S
    flip: bool = True  # random horizontal flips
    eval_interval: int = 500  # steps between validation passes (and checkpoint saves)
    eval_videos: int = 200  # validation trailers scored at each pass (0 = all)
    num_workers: int = 0  # DataLoader processes reading the frame cache (GPU runs: 4-8)
    seed: int = 0  # trunk/head init (unless --init) and batch draws


@dataclass
class TrailerSet:
    """The trailers a run trains and validates on, with their multi-hot tags."""

    url: str
    video_ids: list[str]
    splits: dict[str, str]
    genres: list[str]  # vocabulary, in head order (genres first, then keywords)
    keywords: list[str]
    labels: dict[str, np.ndarray]  # video id -> (n_genres + n_keywords,) float32 multi-hot
    frame_shape: tuple[int, int, int, int]  # (k frames per shot, S, S, 3)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> video ids

    @property
    def input_size(self) -> int:
        return self.frame_shape[1]

    @property
    def vocabulary(self) -> dict[str, list[str]]:
        return {"genres": list(self.genres), "keywords": list(self.keywords)}

    def ids(self, split: str) -> list[str]:
        return [v for v in self.video_ids if self.splits[v] == split]

    @classmethod
    def from_store(
        cls,
        url: str,
        config: EncoderTrainConfig = EncoderTrainConfig(),
        *,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> TrailerSet:
        """Trailers with cached frames and tags; the others are skipped and counted.

        The vocabulary is built from the training trailers unless given (a resumed run
        keeps its checkpoint's vocabulary, and refuses a store that no longer fits it).
        """
        store = open_store(url)
        all_ids = store.video_ids()
        if not all_ids:
            raise TrainerError(
                f"store {url} has no complete videos: run `storyline extract --store {url} "
                "--manifest trailers.csv --frames` first"
            )
        skipped: dict[str, list[str]] = {"no frame cache": [], "no tags": []}
        shapes: dict[tuple[int, ...], list[str]] = {}
        for vid in all_ids:
            try:
                shapes.setdefault(tuple(store.frames(vid).shape[1:]), []).append(vid)
            except VideoNotFoundError:
                skipped["no frame cache"].append(vid)
        if not shapes:
            raise TrainerError(
                f"store {url} has no cached frames: the encoder trains on frames, never video. "
                f"Run `storyline extract --store {url} --manifest trailers.csv --frames` "
                "(add --input-size to cache smaller frames)"
            )
        if len(shapes) > 1:
            sizes = ", ".join(f"{s} ({len(v)} videos)" for s, v in shapes.items())
            raise TrainerError(
                f"store {url} caches frames of several shapes: {sizes}; train on a store "
                "extracted at one --input-size"
            )
        frame_shape, with_frames = next(iter(shapes.items()))
        tags = video_tags(store, with_frames)
        tagged = []
        for vid in with_frames:
            if tags[vid]["genres"] or tags[vid]["keywords"]:
                tagged.append(vid)
            else:
                skipped["no tags"].append(vid)
        splits = assign_splits({v: tags[v]["split"] for v in tagged}, seed=config.seed)
        train_ids = [v for v in tagged if splits[v] == "train"]
        if not train_ids:
            raise TrainerError(
                f"store {url} has no tagged trailers in the train split: give the manifest "
                "genres/keywords (and a split column, or leave it empty)"
            )
        if vocabulary is None:
            vocab = TagVocab.from_videos(
                [tags[v] for v in train_ids],
                min_keyword_videos=config.min_keyword_videos,
                max_keywords=config.max_keywords,
            )
        else:
            vocab = TagVocab.from_dict(vocabulary)
        labels = {vid: vocab.encode(tags[vid]) for vid in tagged}
        genres, keywords = list(vocab.genres), list(vocab.keywords)
        skipped = {k: v for k, v in skipped.items() if v}
        return cls(url, tagged, splits, genres, keywords, labels, frame_shape, skipped)


# ---------------------------------------------------------------------------- sampling
def sample_frames(frames: Any, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(n, m, S, S, 3) uint8 from a (n_shots, k, S, S, 3) cache (zarr or numpy).

    Shots are drawn without replacement (with it when a trailer has fewer than n); one
    frame at random within each of the m equal parts of the k cached frames.
    """
    n_shots, k = int(frames.shape[0]), int(frames.shape[1])
    if k < m or k % m:
        raise TrainerError(
            f"the frame cache holds {k} frames per shot; training needs a "
            f"multiple of m={m}: re-extract with --frames"
        )
    shots = np.sort(rng.choice(n_shots, size=n, replace=n_shots < n))
    unique, inverse = np.unique(shots, return_inverse=True)
    # One orthogonal read: each chunk of the cache is fetched once, not once per shot.
    block = frames[unique] if isinstance(frames, np.ndarray) else frames.oindex[unique]
    per_part = k // m
    picks = np.arange(m) * per_part + rng.integers(0, per_part, size=(n, m))
    return block[inverse[:, None], picks]


def augment(frames: np.ndarray, rng: np.random.Generator, *, pad: float, flip: bool) -> np.ndarray:
    """Random pad-and-crop and horizontal flip of (N, S, S, 3) uint8 frames.

    The cache holds crops at the input size already, so a random crop first reflect-pads
    by ``pad * S`` (a shift of up to that many pixels, never a blank border).
    """
    n, size = frames.shape[0], frames.shape[1]
    p = int(round(pad * size))
    out = frames
    if p > 0:
        padded = np.pad(frames, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        ys, xs = rng.integers(0, 2 * p + 1, size=(2, n))
        out = np.stack(
            [
                padded[i, y : y + size, x : x + size]
                for i, (y, x) in enumerate(zip(ys, xs, strict=True))
            ]
        )
    if flip:
        mirror = rng.random(n) < 0.5
        out = np.where(mirror[:, None, None, None], out[:, :, ::-1], out)
    return np.ascontiguousarray(out)


class StepBatches(torch.utils.data.Dataset):
    """Item s is the batch of step s: (frames B x F x 3 x S x S float, labels B x T).

    A map-style dataset over steps, so DataLoader workers read the Zarr cache in parallel
    and a resumed run starts at its step with the same draws.
    """

    def __init__(
        self, data: TrailerSet, config: EncoderTrainConfig, preprocessing: Preprocessing
    ) -> None:
        self.data, self.config, self.preprocessing = data, config, preprocessing
        self.train_ids = data.ids("train")
        self._store: FeatureStore | None = None  # opened per process, on first use

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._store is None:
            self._store = FeatureStore(self.data.url, mode="r")
        c = self.config
        rng = np.random.default_rng([c.seed, 3, step])
        vids = rng.choice(
            len(self.train_ids), size=c.batch_videos, replace=len(self.train_ids) < c.batch_videos
        )
        clips = []
        for i in vids:
            vid = self.train_ids[i]
            shots = sample_frames(
                self._store.frames(vid), c.shots_per_video, c.frames_per_shot, rng
            )
            clips.append(shots.reshape(-1, *shots.shape[2:]))
        frames = augment(np.concatenate(clips), rng, pad=c.pad, flip=c.flip)
        x = self.preprocessing.to_tensor(frames)
        x = x.reshape(len(vids), -1, *x.shape[1:])
        y = torch.from_numpy(np.stack([self.data.labels[self.train_ids[i]] for i in vids]))
        return x, y


# ---------------------------------------------------------------------------- model
class TrailerTagger(nn.Module):
    """BN-Inception trunk + one linear layer over the mean of a trailer's frame features."""

    def __init__(
        self,
        n_genres: int,
        n_keywords: int,
        *,
        trunk: BNInception | None = None,
        keyword_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_genres, self.n_keywords = n_genres, n_keywords
        self.keyword_weight = keyword_weight
        self.trunk = trunk if trunk is not None else bn_inception()
        self.head = nn.Linear(FEATURE_DIM, n_genres + n_keywords)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: B x F x 3 x S x S (F = n*m frames) -> (logits B x T, loss or None)."""
        b, f = x.shape[:2]
        feats = self.trunk(x.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        # (B*F) x 1024
        clip = feats.float().view(b, f, -1).mean(1)  # paper eq. 1, over all n*m frames
        # B x 1024
        logits = self.head(clip)
        # B x T
        return logits, None if targets is None else self.loss(logits, targets)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """BCE averaged over genres, plus ``keyword_weight`` x BCE averaged over keywords."""
        g = self.n_genres
        loss = logits.new_zeros(())
        if g:
            loss = loss + F.binary_cross_entropy_with_logits(logits[:, :g], targets[:, :g])
        if self.n_keywords:
            loss = loss + self.keyword_weight * F.binary_cross_entropy_with_logits(
                logits[:, g:], targets[:, g:]
            )
        return loss


def load_init(path: str) -> tuple[dict[str, torch.Tensor], Preprocessing, str]:
    """Trunk weights, preprocessing and id of an ``--init`` file (an imported ImageNet
    BN-Inception or an earlier encoder checkpoint), loaded without pickled code."""
    try:
        weights = read_weights(path, bare=False)
    except EncoderError as exc:
        raise TrainerError(str(exc)) from exc
    return weights.state, weights.preprocessing, weights.id


# ---------------------------------------------------------------------------- metrics
def tag_metrics(scores: np.ndarray, labels: np.ndarray, n_genres: int) -> dict[str, float]:
    """recall@3 and MAP of genres, MAP of keywords (NaN where a part has no tags)."""
    g = n_genres
    return {
        "genre_recall@3": recall_at_k(scores[:, :g], labels[:, :g], 3) if g else float("nan"),
        "genre_map": mean_average_precision(scores[:, :g], labels[:, :g]),
        "keyword_recall@3": recall_at_k(scores[:, g:], labels[:, g:], 3),
        "keyword_map": mean_average_precision(scores[:, g:], labels[:, g:]),
    }


# ---------------------------------------------------------------------------- evaluation
def centre_frames(cache: np.ndarray, m: int) -> np.ndarray:
    """(n_shots, m, S, S, 3): the centre frame of each third, what the extractor encodes."""
    k = cache.shape[1]
    per_part = max(1, k // m)
    return cache[:, [j * per_part + per_part // 2 for j in range(min(m, k))]]


@torch.no_grad()
def shot_features(
    trunk: BNInception,
    cache: np.ndarray,
    preprocessing: Preprocessing,
    *,
    m: int = 3,
    device: torch.device | None = None,
    batch_frames: int = 96,
) -> torch.Tensor:
    """(n_shots, 1024) float32: mean of each shot's m centre-of-third frame features."""
    device = device or next(trunk.parameters()).device
    frames = centre_frames(cache, m)
    n, mm = frames.shape[:2]
    flat = frames.reshape(n * mm, *frames.shape[2:])
    out = []
    for i in range(0, len(flat), batch_frames):
        x = preprocessing.to_tensor(flat[i : i + batch_frames]).to(
            device, memory_format=torch.channels_last
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(trunk(x).float())
    return torch.cat(out).view(n, mm, -1).mean(1).cpu()


@torch.no_grad()
def evaluate(
    model: TrailerTagger,
    data: TrailerSet,
    video_ids: Sequence[str],
    preprocessing: Preprocessing,
    *,
    m: int = 3,
) -> dict[str, float]:
    """Score Average on whole videos (tags.score_average): every shot scored by the head,
    its sigmoid scores averaged."""
    if not video_ids:
        return {}
    was_training = model.training
    model.eval()
    store = FeatureStore(data.url, mode="r")
    scores = []
    for vid in video_ids:
        feats = shot_features(model.trunk, store.frames(vid)[:], preprocessing, m=m)
        logits = model.head(feats.to(model.head.weight.device)).float()
        scores.append(score_average(logits).cpu().numpy())
    model.train(was_training)
    labels = np.stack([data.labels[v] for v in video_ids])
    return {**tag_metrics(np.stack(scores), labels, len(data.genres)), "videos": len(video_ids)}


# ---------------------------------------------------------------------------- training
def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def check_resume(ckpt: dict[str, Any], path: str, data: TrailerSet) -> None:
    """A checkpoint of another architecture, vocabulary or frame size cannot continue here."""
    if ckpt.get("architecture") != ARCHITECTURE:
        raise TrainerError(
            f"{path} holds a {ckpt.get('architecture')!r} encoder, not "
            f"{ARCHITECTURE!r}: train into another --out"
        )
    if ckpt.get("vocabulary") != data.vocabulary:
        old = ckpt.get("vocabulary") or {}
        raise TrainerError(
            f"{path} was trained on another tag vocabulary ({len(old.get('genres', []))} "
            f"genres, {len(old.get('keywords', []))} keywords; this store gives "
            f"{len(data.genres)} and {len(data.keywords)}): train into another --out"
        )
    size = ckpt.get("preprocessing", {}).get("input_size")
    if size != data.input_size:
        raise TrainerError(
            f"{path} was trained at input size {size}; this store caches "
            f"{data.input_size}-pixel frames: train into another --out"
        )


def train(
    data: TrailerSet,
    *,
    config: EncoderTrainConfig = EncoderTrainConfig(),
    out: str | None = None,
    init: str | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[TrailerTagger, dict[str, Any]]:
    """Train on the train split's trailers, validate on ``val`` (Score Average), checkpoint
    to ``out`` at every validation pass and at the end; ``resume`` continues from ``out``
    (a missing file starts fresh; any other file is refused and left as it is)."""
    dev = _device(device)
    cuda = dev.type == "cuda"
    ckpt = resume_checkpoint(out, KIND) if resume and out is not None else None
    if ckpt is not None:
        check_resume(ckpt, out, data)
    torch.manual_seed(config.seed)
    init_info: dict[str, Any] | None = None
    if init is not None:
        state, preprocessing, init_id = load_init(init)
        trunk = bn_inception(weights=state)
        init_info = {"path": str(init), "encoder_id": init_id}
    else:
        trunk, preprocessing = bn_inception(), Preprocessing()
    # The cache fixes the input size; an ImageNet file keeps its value range and mean.
    preprocessing = Preprocessing.from_dict(
        {**preprocessing.to_dict(), "input_size": data.input_size}
    )
    model = TrailerTagger(
        len(data.genres), len(data.keywords), trunk=trunk, keyword_weight=config.keyword_weight
    )
    loop_state = LoopState()
    if ckpt is not None:
        model.trunk.load_state_dict(ckpt["encoder"])
        model.head.load_state_dict(ckpt["head"])
        preprocessing = Preprocessing.from_dict(ckpt["preprocessing"])
        loop_state = LoopState(step=int(ckpt["step"]), history=list(ckpt.get("history", [])))
        init_info = ckpt.get("init")
    model.to(dev, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.trunk.parameters(), "lr": config.lr},
            {"params": model.head.parameters(), "lr": config.lr * config.head_lr_mult},
        ],
        weight_decay=config.weight_decay,
    )
    for group in optimizer.param_groups:
        group["peak_lr"] = group["lr"]
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    amp = None
    if cuda:
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    val_ids = data.ids("val") or data.ids("test")
    probe = val_ids
    if config.eval_videos and len(val_ids) > config.eval_videos:
        pick = np.random.default_rng(stable_seed(config.seed, "eval")).choice(
            len(val_ids), config.eval_videos, replace=False
        )
        probe = [val_ids[i] for i in sorted(pick)]

    def save(step: int, state: LoopState) -> None:
        if out is None:
            return
        # the encoder file the extractor reads (extract --checkpoint), plus the trainer's part
        save_checkpoint(
            out,
            KIND,
            {
                **EncoderWeights(model.trunk.state_dict(), preprocessing).payload(),
                "head": {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
                "vocabulary": data.vocabulary,
                "config": asdict(config),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "history": state.history,
                "init": init_info,
                "store": data.url,
                "skipped": {k: len(v) for k, v in data.skipped.items()},
            },
        )

    loader = iter(
        torch.utils.data.DataLoader(
            StepBatches(data, config, preprocessing),
            batch_size=None,
            sampler=range(loop_state.step, config.steps),
            num_workers=config.num_workers,
            pin_memory=cuda,
            persistent_workers=False,
        )
    )

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next(loader)  # the loader draws batch `step` (its sampler starts there)
        return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

    loop = LoopConfig.of(config, "train encoder", min_lr=config.lr * config.min_lr_frac)
    loop_state = run(
        model,
        optimizer,
        loop,
        get,
        save=save,
        state=loop_state,
        amp=amp,
        progress=progress,
        log=log,
        evaluate=lambda: evaluate(model, data, probe, preprocessing, m=config.frames_per_shot),
    )
    history = loop_state.history
    result: dict[str, Any] = {
        "steps": loop_state.step,
        "loss": loop_state.loss,
        "trailers_per_s": loop_state.per_second,
        "device": str(dev),
        "train_trailers": len(data.ids("train")),
        "val_trailers": len(val_ids),
        "genres": len(data.genres),
        "keywords": len(data.keywords),
        "skipped": {k: len(v) for k, v in data.skipped.items()},
    }
    if history:
        result["val"] = {k: v for k, v in history[-1].items() if k not in ("step", "loss")}
    if out is not None and loop_state.step == 0:
        save(0, loop_state)
    return model, result


def load_tagger(path: str) -> tuple[TrailerTagger, Preprocessing, dict[str, Any]]:
    """A trained encoder with its tag head, for retrieval and response plots."""
    ckpt = load_checkpoint(path, KIND)
    if ckpt.get("architecture") != ARCHITECTURE or "head" not in ckpt:
        raise TrainerError(
            f"{path} is not a {ARCHITECTURE} encoder checkpoint with a tag "
            "head: train one with `storyline train encoder`"
        )
    vocab = ckpt["vocabulary"]
    model = TrailerTagger(len(vocab["genres"]), len(vocab["keywords"]))
    try:
        model.trunk.load_state_dict(ckpt["encoder"])
        model.head.load_state_dict(ckpt["head"])
    except RuntimeError as exc:
        raise TrainerError(
            f"{path} does not fit {ARCHITECTURE}: {str(exc).splitlines()[0]}"
        ) from exc
    return model.eval(), Preprocessing.from_dict(ckpt["preprocessing"]), ckpt


def score_average_probe(
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test: Sequence[tuple[np.ndarray, np.ndarray]],
    n_genres: int,
    *,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Compare encoders by their features alone: a linear "Score Average" tag classifier.

    ``train``/``test`` are (shot features n_shots x D, video multi-hot labels) per video.
    Every training shot is labelled with its video's tags; a test video's score is the mean
    of its shots' sigmoid scores (tags.score_average). Features are standardized on the
    training shots, since a random encoder's feature scale is arbitrary. Full-batch AdamW,
    seeded.
    """
    x = torch.from_numpy(np.concatenate([f for f, _ in train])).float()
    y = torch.from_numpy(np.concatenate([np.repeat(t[None], len(f), 0) for f, t in train]))
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x.shape[1], y.shape[1])
    with torch.no_grad():
        layer.weight.normal_(0, 0.01, generator=generator)
        layer.bias.zero_()
    optimizer = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    xs = (x - mean) / std
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(layer(xs), y.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        scores = np.stack(
            [
                score_average(layer((torch.from_numpy(f).float() - mean) / std)).numpy()
                for f, _ in test
            ]
        )
    labels = np.stack([t for _, t in test])
    return tag_metrics(scores, labels, n_genres)
