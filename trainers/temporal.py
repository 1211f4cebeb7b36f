"""Next-shot prediction (paper 4.2, 5.3): an LSTM over m shots scores n candidates.

Model: LSTM (hidden 256) over the m given shot features; its last state is repeated per
candidate and concatenated with the candidate's feature (n x 1280); a stack of 1x1
convolutions maps each to a score; softmax and cross-entropy on the true candidate.
Baseline: cosine between the mean of the given shots and each candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
from .data import ShotTable, TrainerError, check_encoder
from .loop import LoopConfig, LoopState, run
from .questions import QuestionConfig, QuestionSet

KIND = "temporal"


@dataclass(frozen=True)
class TemporalConfig:
    """The model's shape; saved in checkpoints so it can be rebuilt exactly."""

    feature_dim: int = 1024  # D: shot feature size (BN-Inception global pool)
    hidden: int = 256  # LSTM state size (paper: 256)
    conv_channels: tuple[int, ...] = (256, 64)  # widths of the 1x1 convs before the score
    dropout: float = 0.1  # dropout after each hidden 1x1 conv
    input_dropout: float = 0.0  # dropout of feature channels, per question (regularizer)
    # Beyond the paper: a second, small scorer sees each candidate's cosine to every given
    # shot and to their mean (m + 1 numbers) and adds its score to the paper's. Rules such as
    # "the shot two back returns" hold in every film, so this part generalises from few
    # movies where the paper's scorer, which sees the candidate's whole feature, memorises.
    similarity: int = 0  # m, the number of given shots; 0 = the paper's model alone
    similarity_hidden: int = 32  # width of the similarity scorer's hidden layer


@dataclass(frozen=True)
class TemporalTrainConfig:
    """Optimization settings; the defaults train in a minute or two on one CPU core."""

    steps: int = 1000  # optimizer steps in total (a resumed run continues to this)
    batch_size: int = 64  # questions per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup: int = 50  # steps of linear warm-up
    weight_decay: float = 1e-4  # AdamW weight decay
    eval_interval: int = 50  # steps between validation passes (and checkpoint saves)
    eval_questions: int = 4096  # validation questions scored at each pass (0 = all)
    resample: bool = True  # fresh distractors (same rules) for training questions each step
    keep_best: bool = True  # checkpoint and return the best validation pass (early stopping)
    seed: int = 0  # model init and batch order; batch at step s depends only on (seed, s)


class NextShotModel(nn.Module):
    """Scores n candidate next shots given m context shots."""

    def __init__(self, config: TemporalConfig) -> None:
        super().__init__()
        self.config = config
        d = config.feature_dim
        # input standardization, fitted on the training movies (raw encoder scale is arbitrary)
        self.register_buffer("feature_mean", torch.zeros(d))
        self.register_buffer("feature_std", torch.ones(d))
        self.lstm = nn.LSTM(d, config.hidden, batch_first=True)
        widths = [config.hidden + d, *config.conv_channels, 1]
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 1) for a, b in pairs)
        self.similarity = None
        if config.similarity:  # (m + 1) similarities -> a score, per candidate
            self.similarity = nn.Sequential(
                nn.Linear(config.similarity + 1, config.similarity_hidden),
                nn.ReLU(),
                nn.Linear(config.similarity_hidden, 1),
            )
            # the paper's scorer joins in from zero (ReZero): training starts from the
            # similarity rules, which generalise, and adds what the full features know
            self.gate = nn.Parameter(torch.zeros(()))
        self.dropout = nn.Dropout(config.dropout)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    def _drop_channels(
        self, context: torch.Tensor, candidates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input dropout of whole feature channels, the same ones for every shot of a
        question: cosines between its shots stay comparable (a random subspace), and one
        draw per channel instead of per value makes it 40x cheaper on CPU."""
        p = self.config.input_dropout
        if not (self.training and p > 0):
            return context, candidates
        keep = torch.empty_like(context[:, :1]).bernoulli_(1 - p) / (1 - p)  # B x 1 x D
        return context * keep, candidates * keep

    def forward(
        self,
        context: torch.Tensor,
        candidates: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.config.hidden
        context = (context - self.feature_mean) / self.feature_std  # B x m x D
        candidates = (candidates - self.feature_mean) / self.feature_std  # B x n x D
        context, candidates = self._drop_channels(context, candidates)
        _, (state, _) = self.lstm(context)  # 1 x B x H
        # First 1x1 conv over [state; candidate] (B x (H + D) x n), computed as W_s state +
        # W_c candidate: the same numbers without building the repeated n x 1280 input,
        # and the state's part once per question instead of once per candidate.
        first = self.convs[0]
        weight = first.weight.squeeze(2)  # C1 x (H + D)
        x = F.linear(candidates, weight[:, h:], first.bias)  # B x n x C1
        x = x + F.linear(state[-1], weight[:, :h])[:, None, :]  # B x n x C1
        for conv in self.convs[1:]:
            x = self.dropout(F.relu(x))
            x = F.linear(x, conv.weight.squeeze(2), conv.bias)  # B x n x C (1x1 conv)
        scores = x.squeeze(2)  # B x n
        if self.similarity is not None:
            sims = similarities(context, candidates)  # B x n x (m + 1)
            scores = self.gate * scores + self.similarity(SIMILARITY_SCALE * sims).squeeze(2)
        loss = F.cross_entropy(scores, targets) if targets is not None else None
        return scores, loss


# The next-shot models: storyline's default (the paper's scorer joined by the similarity
# scorer, its inputs dropped out heavily: it generalises from a few dozen movies) and the
# paper's model as published.
MODELS = {"similarity": "LSTM + similarity", "paper": "LSTM (paper)"}


def model_config(
    model: str, *, context: int, feature_dim: int, hidden: int = TemporalConfig.hidden
) -> TemporalConfig:
    """The configuration of one of ``MODELS`` for m = ``context`` given shots."""
    if model not in MODELS:
        raise TrainerError(f"--model must be one of {', '.join(MODELS)}, not {model!r}")
    if model == "paper":
        return TemporalConfig(feature_dim=feature_dim, hidden=hidden)
    return TemporalConfig(
        feature_dim=feature_dim, hidden=hidden, similarity=context, input_dropout=0.5
    )


SIMILARITY_SCALE = 10.0  # cosines span a narrow range; scaled, the scorer learns fast


def similarities(context: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, n, m + 1) cosine of each candidate to each given shot and to their mean."""
    given = torch.cat([context, context.mean(dim=1, keepdim=True)], dim=1)  # B x (m + 1) x D
    return F.normalize(candidates, dim=2) @ F.normalize(given, dim=2).transpose(1, 2)


def cosine_baseline(context: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, n) cosine between the mean of the given shots and each candidate."""
    mean = context.mean(dim=1, keepdim=True)  # B x 1 x D
    return F.cosine_similarity(mean, candidates, dim=2, eps=1e-8)


@dataclass
class QuestionRows:
    """A question set as rows of a ShotTable: a batch is one gather, no lookups."""

    context: torch.Tensor  # (q, m) int32 rows of the given shots
    candidates: torch.Tensor  # (q, n) int32 rows of the candidates
    answer: torch.Tensor  # (q,) int64 index of the true candidate

    @classmethod
    def build(cls, qset: QuestionSet, table: ShotTable) -> QuestionRows:
        if table.video_ids != qset.videos:
            raise ValueError("the shot table must hold the question set's movies, in order")
        m = qset.config.context
        offsets = table.offsets
        context = (offsets[qset.video] + qset.target - m)[:, None] + np.arange(m)[None, :]
        candidates = offsets[qset.cand_video] + qset.cand_shot
        return cls(
            torch.from_numpy(context.astype(np.int32)),
            torch.from_numpy(candidates.astype(np.int32)),
            torch.from_numpy(qset.answer.astype(np.int64)),
        )


def get_batch(
    table: ShotTable, rows: QuestionRows, idx: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(context B x m x D, candidates B x n x D, targets B) of questions ``idx``."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    return (
        table.gather(rows.context[idx]),
        table.gather(rows.candidates[idx]),
        rows.answer[idx],
    )


def resampled_batch(
    data: TemporalData, idx: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Questions ``idx`` with freshly drawn distractors and answer positions.

    Same rules as the saved set (never a given shot or the true one; in-movie from the
    question's movie, cross-movie from its split's movies), so a small training set
    shows the model many more negatives than its fixed questions hold. Distractors may
    repeat within a question; at these pool sizes it is rare and harmless.
    """
    qset, offsets = data.qset, data.table.offsets
    m, k = qset.config.context, qset.config.choices - 1
    rows = data.rows.context[torch.as_tensor(idx, dtype=torch.long)].numpy().astype(np.int64)
    true = rows[:, -1] + 1  # table row of the true next shot
    first = rows[:, 0]  # the block [first, true] is never a distractor
    if qset.config.setting == "in-movie":
        start = offsets[qset.video[idx]]
        free = offsets[qset.video[idx] + 1] - start - (m + 1)
        draws = (rng.random((len(idx), k)) * free[:, None]).astype(np.int64) + start[:, None]
        draws += (m + 1) * (draws >= first[:, None])
    else:
        pool = data.split_rows(qset.splits[qset.videos[int(qset.video[idx[0]])]])
        draws = pool[rng.integers(0, len(pool), size=(len(idx), k))]
        clash = (draws >= first[:, None]) & (draws <= true[:, None])
        while clash.any():
            draws[clash] = pool[rng.integers(0, len(pool), size=int(clash.sum()))]
            clash = (draws >= first[:, None]) & (draws <= true[:, None])
    answer = rng.integers(0, k + 1, size=len(idx))
    cands = np.empty((len(idx), k + 1), dtype=np.int64)
    is_true = np.arange(k + 1)[None, :] == answer[:, None]
    cands[is_true] = true
    cands[~is_true] = draws.reshape(-1)
    table = data.table
    return table.gather(rows), table.gather(cands), torch.from_numpy(answer)


@torch.no_grad()
def correct(
    model: NextShotModel | None,
    table: ShotTable,
    rows: QuestionRows,
    idx: np.ndarray,
    *,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """Per question of ``idx``: whether the model (when given) and the cosine baseline
    chose the true next shot (bool arrays, the raw material of accuracies and intervals)."""
    if model is not None:
        was_training = model.training
        model.eval()
    right: list[np.ndarray] = []
    right_base: list[np.ndarray] = []
    for start in range(0, len(idx), batch_size):
        context, candidates, targets = get_batch(table, rows, idx[start : start + batch_size])
        right_base.append((cosine_baseline(context, candidates).argmax(1) == targets).numpy())
        if model is not None:
            scores, _ = model(context, candidates)
            right.append((scores.argmax(1) == targets).numpy())
    if model is not None and was_training:
        model.train()
    out = {"baseline": np.concatenate(right_base) if right_base else np.zeros(0, bool)}
    if model is not None:
        out["model"] = np.concatenate(right) if right else np.zeros(0, bool)
    return out


def evaluate(
    model: NextShotModel | None,
    table: ShotTable,
    rows: QuestionRows,
    idx: np.ndarray,
    *,
    batch_size: int = 512,
) -> dict[str, float]:
    """Accuracy of the model (when given) and of the cosine baseline on questions idx."""
    hits = correct(model, table, rows, idx, batch_size=batch_size)
    n = max(len(idx), 1)
    out = {"baseline_accuracy": float(hits["baseline"].sum()) / n, "questions": len(idx)}
    if model is not None:
        out["accuracy"] = float(hits["model"].sum()) / n
    return out


@dataclass
class TemporalData:
    """A question set's movies read once from the store, and its questions as rows."""

    qset: QuestionSet
    table: ShotTable
    rows: QuestionRows
    encoder: str = ""
    encoder_id: str = ""
    read_seconds: float = field(default=0.0)
    _split_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_store(
        cls, store: FeatureStore, encoder: str, qset: QuestionSet, *, progress: bool = True
    ) -> TemporalData:
        encoder_id = check_encoder(store, encoder)
        have = set(store.video_ids(encoder=encoder))
        lacking = [v for v in qset.videos if v not in have]
        if lacking:
            raise TrainerError(
                f"{len(lacking)} of the {len(qset.videos)} movies of question set "
                f"{qset.name!r} have no features of encoder {encoder!r} (e.g. {lacking[0]!r}): "
                f"extract them with --encoder {encoder}, or rebuild the questions"
            )
        t0 = time.perf_counter()
        table = ShotTable.from_store(store, encoder, qset.videos, progress=progress)
        return cls(
            qset,
            table,
            QuestionRows.build(qset, table),
            encoder,
            encoder_id,
            time.perf_counter() - t0,
        )

    def split_rows(self, split: str) -> np.ndarray:
        """Table rows of every shot of one split's movies (cross-movie distractor pool)."""
        if split not in self._split_rows:
            offsets = self.table.offsets
            self._split_rows[split] = np.concatenate(
                [
                    np.arange(offsets[i], offsets[i + 1])
                    for i, v in enumerate(self.qset.videos)
                    if self.qset.splits[v] == split
                ]
                or [np.zeros(0, np.int64)]
            )
        return self._split_rows[split]

    @classmethod
    def from_arrays(cls, qset: QuestionSet, arrays: dict[str, np.ndarray]) -> TemporalData:
        table = ShotTable.from_arrays({v: arrays[v] for v in qset.videos})
        return cls(qset, table, QuestionRows.build(qset, table))


def new_model(config: TemporalConfig, data: TemporalData) -> NextShotModel:
    model = NextShotModel(config)
    train_videos = [i for i, v in enumerate(data.qset.videos) if data.qset.splits[v] == "train"]
    model.set_feature_stats(*data.table.stats(train_videos))
    return model


def train_batches(
    data: TemporalData, train_config: TemporalTrainConfig
) -> Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``get_batch(step)`` of training: questions drawn for (seed, step) alone, with fresh
    distractors unless ``resample`` is off."""
    train_idx = data.qset.indices("train")

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([train_config.seed, 2, step])
        batch = rng.choice(train_idx, train_config.batch_size)
        if train_config.resample:
            return resampled_batch(data, batch, rng)
        return get_batch(data.table, data.rows, batch)

    return get


def loop_config(train_config: TemporalTrainConfig, desc: str = "train temporal") -> LoopConfig:
    return LoopConfig.of(train_config, desc, keep_best=train_config.keep_best, select="accuracy")


def train(
    data: TemporalData,
    *,
    model_config: TemporalConfig = TemporalConfig(),
    train_config: TemporalTrainConfig = TemporalTrainConfig(),
    out: str | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[NextShotModel, dict[str, Any]]:
    """Train on the training movies' questions, validating on the validation movies'.

    The checkpoint at ``out`` is written at each validation pass that improves on the
    best so far (every pass without ``keep_best``); with ``resume`` a run continues from it
    to ``train_config.steps`` (a missing file starts fresh; any other file is refused).
    Small training sets overfit after a few hundred steps, so by default the model
    returned is the best one on the validation movies.
    """
    qset = data.qset
    train_idx, val_idx = qset.indices("train"), qset.indices("val")
    if not len(train_idx):
        raise TrainerError(
            f"question set {qset.name!r} has no training questions: "
            "the store needs movies in the train split"
        )
    ckpt = None
    if resume and out is not None:
        ckpt = resume_checkpoint(out, KIND, encoder=data.encoder, encoder_id=data.encoder_id)
        if ckpt is not None and ckpt["questions"] != qset.name:
            raise TrainerError(
                f"{out} was trained on questions {ckpt['questions']!r}, "
                f"not {qset.name!r}: resume with the same settings"
            )
    torch.manual_seed(train_config.seed)
    model = new_model(model_config, data)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
    )
    state = LoopState()
    if ckpt is not None:
        model = NextShotModel(_model_config(ckpt))
        model.load_state_dict(ckpt["model"])
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
        )
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        state = LoopState(step=step, best=float(ckpt.get("best_val", -1.0)), best_step=step)
    rng = np.random.default_rng([train_config.seed, 1])
    val_probe = val_idx
    if train_config.eval_questions and len(val_idx) > train_config.eval_questions:
        val_probe = np.sort(rng.choice(val_idx, train_config.eval_questions, replace=False))

    def validate() -> dict[str, Any]:
        if not len(val_probe):
            return {}
        return {"accuracy": evaluate(model, data.table, data.rows, val_probe)["accuracy"]}

    def save(step: int, state: LoopState) -> None:
        if out is not None:
            payload = training_checkpoint(
                model,
                optimizer,
                config=model.config,
                train_config=train_config,
                step=step,
                encoder=data.encoder,
                encoder_id=data.encoder_id,
                best_val=state.best if len(val_probe) else -1.0,
                questions=qset.name,
                question_config=asdict(qset.config),
            )
            save_checkpoint(out, KIND, payload)

    state = run(
        model,
        optimizer,
        loop_config(train_config, f"train temporal {qset.name}"),
        train_batches(data, train_config),
        evaluate=validate,
        save=save,
        state=state,
        progress=progress,
        log=log,
    )
    metrics: dict[str, Any] = {
        "setting": qset.config.setting,
        "questions": int(len(train_idx)),
        "steps": state.step,
        "best_step": state.best_step,
        "questions_per_s": state.per_second,
    }
    if len(val_idx):
        val = evaluate(model, data.table, data.rows, val_idx)
        metrics.update(
            {
                "val_accuracy": val["accuracy"],
                "val_baseline_accuracy": val["baseline_accuracy"],
                "val_questions": val["questions"],
            }
        )
    metrics["chance"] = 1.0 / qset.config.choices
    metrics["skipped_movies"] = len(qset.skipped)
    return model, metrics


def _model_config(ckpt: dict[str, Any]) -> TemporalConfig:
    raw = dict(ckpt["config"])
    return TemporalConfig(**{**raw, "conv_channels": tuple(raw["conv_channels"])})


def load_model(path: str, encoder: str, encoder_id: str) -> tuple[NextShotModel, dict[str, Any]]:
    """A trained model from its checkpoint, refusing another model's or encoder's."""
    ckpt = load_checkpoint(path, KIND)
    check_checkpoint_encoder(ckpt, path, encoder, encoder_id)
    model = NextShotModel(_model_config(ckpt))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def question_config_for(
    ckpt: dict[str, Any], setting: str, *, seed: int | None = None, choices: int | None = None
) -> QuestionConfig:
    """The test questions matching a checkpoint: its m, n and seed unless overridden."""
    base = dict(ckpt["question_config"])
    base["setting"] = setting
    if seed is not None:
        base["seed"] = seed
    if choices is not None:
        base["choices"] = choices
    return QuestionConfig(**base)


def score_split(model: NextShotModel, data: TemporalData, *, split: str = "test") -> dict:
    """The eval command's metrics: model and baseline accuracy on one split's questions."""
    idx = data.qset.indices(split)
    if not len(idx):
        raise TrainerError(
            f"question set {data.qset.name!r} has no {split} questions: the "
            f"store needs movies in the {split} split"
        )
    res = evaluate(model, data.table, data.rows, idx)
    return {
        "setting": data.qset.config.setting,
        "accuracy": res["accuracy"],
        "baseline_accuracy": res["baseline_accuracy"],
        "chance": 1.0 / data.qset.config.choices,
        "questions": res["questions"],
        "split": split,
        "encoder": data.encoder,
        "skipped_movies": len(data.qset.skipped),
    }
