"""Tag classification on shot features (paper 5.1): genres and plot keywords.

Two classifiers over a video's shot sequence, multi-label (sigmoid, BCE):
- "Score Average": a linear classifier scores every shot; the scores are averaged over
  shots.
- "Feature + LSTM": an LSTM runs over the shots; its per-step outputs are classified and
  the scores averaged over time steps.
A score is a probability, the sigmoid of the classifier's logit (see :func:`score_average`);
the loss is binary cross-entropy on the averaged score. The tag vocabulary is
:mod:`.vocab`'s, the rule the encoder's tag head uses too.
Metrics, for genres and keywords separately: recall@3 and mean average precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..store import FeatureStore
from .checkpoint import (
    check_checkpoint_encoder,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    training_checkpoint,
)
from .data import ShotTable, TrainerError, assign_splits, check_encoder, video_tags
from .loop import Batch, LoopConfig, LoopState, run
from .metrics import chance_map, mean_average_precision, recall_at_k
from .vocab import MAX_KEYWORDS, MIN_KEYWORD_VIDEOS, TagVocab

KIND = "tags"
METHODS = {"average": "Score Average", "lstm": "Feature + LSTM"}


@dataclass(frozen=True)
class TagsConfig:
    """The classifier's shape; saved in checkpoints with the tag vocabulary."""

    method: str = "average"  # "average" (Score Average) or "lstm" (Feature + LSTM)
    feature_dim: int = 1024  # D: shot feature size
    n_genres: int = 0  # genre vocabulary size (from the training videos)
    n_keywords: int = 0  # keyword vocabulary size (from the training videos)
    hidden: int = 256  # LSTM state size ("lstm" only)
    dropout: float = 0.2  # dropout on the features fed to the classifier


@dataclass(frozen=True)
class TagsTrainConfig:
    """Optimization settings; small defaults train in well under a minute on CPU."""

    steps: int = 400  # optimizer steps in total (a resumed run continues to this)
    batch_size: int = 16  # videos per step
    seq_len: int = 64  # shots per training video (a random contiguous crop)
    eval_shots: int = 512  # at most this many shots per video when scoring (evenly spaced)
    lr: float = 3e-3  # peak learning rate (AdamW)
    min_lr: float = 3e-4  # learning rate at the end of the cosine decay
    warmup: int = 20  # steps of linear warm-up
    weight_decay: float = 1e-4  # AdamW weight decay
    eval_interval: int = 100  # steps between validation passes (and checkpoint saves)
    min_keyword_videos: int = MIN_KEYWORD_VIDEOS  # keywords of fewer training videos left out
    max_keywords: int = MAX_KEYWORDS  # keep at most this many keywords (the most frequent)
    seed: int = 0  # model init, split and batch order


def score_average(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """A video's tag scores: its shots' scores (sigmoid of each shot's logits) averaged.

    The paper's "Score Average" (5.1): per-shot scores, then their mean. Averaging the
    logits instead would equal classifying the mean feature (the classifier is linear),
    and one shot with an extreme logit could outvote the rest. ``logits`` (..., T, C);
    ``mask`` (..., T) marks real shots (None: all are). Returns (..., C) in (0, 1).
    """
    scores = torch.sigmoid(logits)
    if mask is None:
        return scores.mean(-2)
    weights = mask.to(scores.dtype)[..., None]  # ... x T x 1
    return (scores * weights).sum(-2) / weights.sum(-2).clamp_min(1)


class TagModel(nn.Module):
    """Multi-label tag scores of a video from its shot features."""

    def __init__(self, config: TagsConfig) -> None:
        super().__init__()
        if config.method not in METHODS:
            raise TrainerError(
                f"--method must be one of {', '.join(METHODS)}, not {config.method!r}"
            )
        self.config = config
        d, c = config.feature_dim, config.n_genres + config.n_keywords
        self.register_buffer("feature_mean", torch.zeros(d))
        self.register_buffer("feature_std", torch.ones(d))
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(d, config.hidden, batch_first=True) if config.method == "lstm" else None
        self.classifier = nn.Linear(config.hidden if self.lstm is not None else d, c)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = (x - self.feature_mean) / self.feature_std  # B x T x D
        if self.lstm is not None:
            x, _ = self.lstm(x)  # B x T x H (right padding never reaches earlier steps)
        logits = self.classifier(self.dropout(x))  # B x T x C, per shot (per step)
        scores = score_average(logits, mask)  # B x C, in (0, 1)
        loss = None
        if targets is not None:
            loss = F.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), targets)
        return scores, loss


@dataclass
class TagData:
    """Every tagged video's features read once, with labels and movie-level splits."""

    table: ShotTable
    labels: torch.Tensor  # (n_videos, C) float32 multi-hot
    splits: list[str]  # per video
    vocab: TagVocab
    encoder: str = ""
    encoder_id: str = ""
    untagged: int = 0  # videos left out because they carry no tags at all

    @classmethod
    def from_store(
        cls,
        store: FeatureStore,
        encoder: str,
        *,
        seed: int = 0,
        only: Iterable[str] | None = None,
        vocab: TagVocab | None = None,
        min_keyword_videos: int = MIN_KEYWORD_VIDEOS,
        max_keywords: int = MAX_KEYWORDS,
        progress: bool = True,
    ) -> TagData:
        encoder_id = check_encoder(store, encoder)
        ids = store.video_ids(encoder=encoder)
        if only is not None:
            wanted = set(only)
            ids = [v for v in ids if v in wanted]
        tags = video_tags(store, ids)
        tagged = [v for v in ids if tags[v]["genres"] or tags[v]["keywords"]]
        if not tagged:
            raise TrainerError(
                f"no video with features of {encoder!r} in {store.url} has genres or keywords: "
                "give them in the manifest's genres and keywords columns"
            )
        splits = assign_splits({v: tags[v]["split"] for v in tagged}, seed=seed)
        if vocab is None:
            vocab = TagVocab.from_videos(
                [tags[v] for v in tagged if splits[v] == "train"],
                min_keyword_videos=min_keyword_videos,
                max_keywords=max_keywords,
            )
        if not vocab.genres and not vocab.keywords:
            raise TrainerError("the training videos carry no tags: nothing to learn")
        table = ShotTable.from_store(store, encoder, tagged, progress=progress)
        labels = torch.from_numpy(np.stack([vocab.encode(tags[v]) for v in tagged]))
        return cls(
            table,
            labels,
            [splits[v] for v in tagged],
            vocab,
            encoder,
            encoder_id,
            len(ids) - len(tagged),
        )

    def indices(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in seqs)
    x = torch.zeros(len(seqs), longest, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), longest, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s.float()
        mask[i, : len(s)] = True
    return x, mask


def get_batch(
    data: TagData, videos: np.ndarray, *, seq_len: int, rng: np.random.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x B x T x D, mask B x T, targets B x C): a random crop of seq_len shots per video
    when training (rng given), else up to seq_len evenly spaced shots."""
    seqs = []
    for v in videos:
        shots = data.table.video(int(v))
        n = len(shots)
        if n > seq_len:
            if rng is not None:
                start = int(rng.integers(0, n - seq_len + 1))
                shots = shots[start : start + seq_len]
            else:
                shots = shots[np.linspace(0, n - 1, seq_len).round().astype(np.int64)]
        seqs.append(shots)
    x, mask = _pad(seqs)
    return x, mask, data.labels[torch.as_tensor(videos, dtype=torch.long)]


@torch.no_grad()
def predict(
    model: TagModel, data: TagData, videos: np.ndarray, *, eval_shots: int, batch_size: int = 16
) -> np.ndarray:
    """(len(videos), C) tag scores."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(videos), batch_size):
        x, mask, _ = get_batch(
            data, videos[start : start + batch_size], seq_len=eval_shots, rng=None
        )
        out.append(model(x, mask)[0].numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, data.labels.shape[1]), np.float32)


def evaluate(
    model: TagModel, data: TagData, videos: np.ndarray, *, eval_shots: int = 512
) -> dict[str, Any]:
    """recall@3 and MAP for genres and keywords separately, with chance recall@3."""
    scores = predict(model, data, videos, eval_shots=eval_shots)
    labels = data.labels[torch.as_tensor(videos, dtype=torch.long)].numpy()
    g = len(data.vocab.genres)
    out: dict[str, Any] = {}
    for name, cols in (("genres", slice(0, g)), ("keywords", slice(g, None))):
        n_classes = labels[:, cols].shape[1]
        out[name] = {
            "recall@3": recall_at_k(scores[:, cols], labels[:, cols], 3) if n_classes else None,
            "map": mean_average_precision(scores[:, cols], labels[:, cols]) if n_classes else None,
            "chance_recall@3": min(1.0, 3 / n_classes) if n_classes else None,
            "chance_map": chance_map(labels[:, cols]) if n_classes else None,
            "classes": n_classes,
        }
    return out


def train_batches(data: TagData, train_config: TagsTrainConfig) -> Callable[[int], Batch]:
    """``get_batch(step)``: training videos drawn for (seed, step), a random crop of each."""
    train_idx = data.indices("train")

    def get(step: int) -> Batch:
        rng = np.random.default_rng([train_config.seed, 3, step])
        videos = rng.choice(train_idx, train_config.batch_size)
        return get_batch(data, videos, seq_len=train_config.seq_len, rng=rng)

    return get


def train(
    data: TagData,
    *,
    method: str = "average",
    hidden: int = 256,
    train_config: TagsTrainConfig = TagsTrainConfig(),
    out: str | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[TagModel, dict[str, Any]]:
    """Train on the training videos, validate on the validation videos, score the test
    videos (the validation ones when there is no test split)."""
    train_idx, val_idx = data.indices("train"), data.indices("val")
    if not len(train_idx):
        raise TrainerError("no tagged videos in the train split: check the manifest's split column")
    config = TagsConfig(
        method=method,
        feature_dim=data.table.dim,
        hidden=hidden,
        n_genres=len(data.vocab.genres),
        n_keywords=len(data.vocab.keywords),
    )
    ckpt = None
    if resume and out is not None:
        ckpt = resume_checkpoint(out, KIND, encoder=data.encoder, encoder_id=data.encoder_id)
        if ckpt is not None and (
            TagsConfig(**ckpt["config"]) != config or _vocab(ckpt) != data.vocab
        ):
            raise TrainerError(
                f"{out} holds a {ckpt['config']['method']!r} classifier over "
                "other tags or settings: resume with the same ones"
            )
    torch.manual_seed(train_config.seed)
    model = TagModel(config)
    model.set_feature_stats(*data.table.stats(train_idx.tolist()))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
    )
    state = LoopState()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = LoopState(step=int(ckpt["step"]))

    def validate() -> dict[str, Any]:
        if not len(val_idx):
            return {}
        val = evaluate(model, data, val_idx, eval_shots=train_config.eval_shots)
        return {
            f"{group}_{name}": val[group][name]
            for group in ("genres", "keywords")
            for name in ("recall@3", "map")
            if val[group][name] is not None
        }

    def save(step: int, state: LoopState) -> None:
        if out is not None:
            payload = training_checkpoint(
                model,
                optimizer,
                config=config,
                train_config=train_config,
                step=step,
                encoder=data.encoder,
                encoder_id=data.encoder_id,
                genres=list(data.vocab.genres),
                keywords=list(data.vocab.keywords),
            )
            save_checkpoint(out, KIND, payload)

    loop = LoopConfig.of(train_config, f"train tags ({method})")
    state = run(
        model,
        optimizer,
        loop,
        train_batches(data, train_config),
        evaluate=validate,
        save=save,
        state=state,
        progress=progress,
        log=log,
    )
    test_idx, split = data.indices("test"), "test"
    if not len(test_idx):
        test_idx, split = val_idx, "val"
    metrics = score(model, data, test_idx, split=split, eval_shots=train_config.eval_shots)
    metrics["steps"] = state.step
    return model, metrics


def score(
    model: TagModel, data: TagData, videos: np.ndarray, *, split: str, eval_shots: int = 512
) -> dict[str, Any]:
    """The train command's metrics: the issue's two groups, plus what they were scored on."""
    if not len(videos):
        raise TrainerError("no tagged videos in the val or test split to score on")
    res = evaluate(model, data, videos, eval_shots=eval_shots)
    return {
        "genres": res["genres"],
        "keywords": res["keywords"],
        "method": model.config.method,
        "split": split,
        "videos": int(len(videos)),
        "encoder": data.encoder,
        "untagged_videos": data.untagged,
    }


def _vocab(ckpt: dict[str, Any]) -> TagVocab:
    return TagVocab(tuple(ckpt["genres"]), tuple(ckpt["keywords"]))


def load_model(path: str, store: FeatureStore, encoder: str) -> tuple[TagModel, TagVocab, dict]:
    """A trained tag classifier with its vocabulary, refusing another model's checkpoint."""
    ckpt = load_checkpoint(path, KIND)
    check_checkpoint_encoder(ckpt, path, encoder, check_encoder(store, encoder))
    model = TagModel(TagsConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, _vocab(ckpt), ckpt
