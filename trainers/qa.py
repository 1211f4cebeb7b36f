"""Movie question answering on clip features (paper 5.2), MovieQA's file format.

A clip's feature is the mean of its shots' features in the store (clips are extracted
like any video; a clip named ``X.mp4`` in MovieQA is store id ``safe_id("X")``). Question
and answers are embedded with word2vec-format vectors (mean over tokens). Head, as in the
paper: [clip (1024) + question (300)] repeated per answer and concatenated with that
answer's embedding (n x 1624), three 1x1 convolutions to n scores, softmax.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..extractor.manifest import safe_id
from ..store import FeatureStore
from .checkpoint import (
    check_checkpoint_encoder,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    training_checkpoint,
)
from .data import TrainerError, assign_splits, check_encoder, normalize_split
from .loop import LoopConfig, LoopState, run

KIND = "qa"
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class QAConfig:
    """The answer-scoring head's shape; saved in checkpoints."""

    clip_dim: int = 1024  # clip feature size (mean of its shots' features)
    text_dim: int = 300  # word-vector size (read from the vectors file)
    channels: tuple[int, int] = (512, 128)  # widths of the first two of three 1x1 convs
    dropout: float = 0.3  # dropout after each hidden 1x1 conv


@dataclass(frozen=True)
class QATrainConfig:
    """Optimization settings; the defaults train in seconds on CPU."""

    steps: int = 1000  # optimizer steps in total (a resumed run continues to this)
    batch_size: int = 32  # questions per step
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup: int = 20  # steps of linear warm-up
    weight_decay: float = 1e-3  # AdamW weight decay
    eval_interval: int = 100  # steps between validation passes (and checkpoint saves)
    seed: int = 0  # model init, batch order and the seeded split of unsplit movies


class QAModel(nn.Module):
    """Scores each answer of a question given the clip's visual feature."""

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("clip_mean", torch.zeros(config.clip_dim))
        self.register_buffer("clip_std", torch.ones(config.clip_dim))
        width = config.clip_dim + 2 * config.text_dim
        c1, c2 = config.channels
        self.convs = nn.Sequential(
            nn.Conv1d(width, c1, 1),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Conv1d(c1, c2, 1),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Conv1d(c2, 1, 1),
        )

    def set_clip_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.clip_mean.copy_(mean)
        self.clip_std.copy_(std)

    def forward(
        self,
        clip: torch.Tensor,
        question: torch.Tensor,
        answers: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = answers.shape[1]
        clip = (clip - self.clip_mean) / self.clip_std  # B x Dc
        given = torch.cat([clip, question], dim=1)[:, None, :].expand(-1, n, -1)  # B x n x (Dc+Dt)
        x = torch.cat([given, answers], dim=2).transpose(1, 2)  # B x (Dc + 2 Dt) x n
        scores = self.convs(x).squeeze(1)  # B x n
        loss = F.cross_entropy(scores, targets) if targets is not None else None
        return scores, loss


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class QAItem:
    """One MovieQA question."""

    qid: str
    question: str
    answers: tuple[str, ...]
    correct: int | None  # None where the file hides it (MovieQA's test set)
    movie: str  # imdb_key
    clips: tuple[str, ...]  # video clip file names
    split: str | None  # from the qid prefix ("train:12") or a "split" field


def read_movieqa(path: str | Path) -> list[QAItem]:
    """Questions of a MovieQA ``qa.json`` (a list of objects with qid, question, answers,
    correct_index, imdb_key and video_clips)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainerError(f"no MovieQA file at {path}") from exc
    except json.JSONDecodeError as exc:
        raise TrainerError(f"{path} is not JSON ({exc}): expected MovieQA's qa.json") from exc
    if isinstance(raw, dict) and "questions" in raw:
        raw = raw["questions"]
    if not isinstance(raw, list) or not raw:
        raise TrainerError(f"{path} holds no questions: expected a JSON list of MovieQA items")
    items = []
    for i, q in enumerate(raw):
        missing = [k for k in ("question", "answers", "imdb_key") if k not in q]
        if missing:
            raise TrainerError(
                f"{path}: question {i} lacks {missing}; MovieQA items have "
                "qid, question, answers, correct_index, imdb_key, video_clips"
            )
        qid = str(q.get("qid", f"q{i}"))
        prefix = qid.split(":", 1)[0] if ":" in qid else None
        split = normalize_split(
            q.get("split") or (prefix if prefix in ("train", "val", "test") else None), video_id=qid
        )
        correct = q.get("correct_index")
        items.append(
            QAItem(
                qid=qid,
                question=str(q["question"]),
                answers=tuple(str(a) for a in q["answers"]),
                correct=None if correct is None else int(correct),
                movie=str(q["imdb_key"]),
                clips=tuple(str(c) for c in q.get("video_clips") or ()),
                split=split,
            )
        )
    return items


def clip_id(name: str) -> str:
    """The store id a MovieQA clip file name is extracted under."""
    return safe_id(Path(name).stem)


class TextEmbedder:
    """Mean of a text's word vectors (zeros when none of its words is known)."""

    def __init__(self, path: str | Path, *, limit: int | None = None) -> None:
        from gensim.models import KeyedVectors  # slow import: only when QA runs

        path = Path(path)
        if not path.is_file():
            raise TrainerError(
                f"no word-vector file at {path}: pass word2vec-format vectors with --word-vectors"
            )
        binary = path.suffix == ".bin" or path.name.endswith(".bin.gz")
        try:
            self.vectors = KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)
        except (UnicodeDecodeError, ValueError):
            try:
                self.vectors = KeyedVectors.load_word2vec_format(
                    str(path), binary=not binary, limit=limit
                )
            except Exception as exc:
                raise TrainerError(
                    f"{path} is not a word2vec file (text or binary): {exc}"
                ) from exc
        self.dim = int(self.vectors.vector_size)
        self.unknown = 0  # texts with no known word

    def __call__(self, text: str) -> np.ndarray:
        vecs = []
        for token in _TOKEN.findall(text):
            for form in (token, token.lower()):
                if form in self.vectors.key_to_index:
                    vecs.append(self.vectors[form])
                    break
        if not vecs:
            self.unknown += 1
            return np.zeros(self.dim, dtype=np.float32)
        return np.mean(vecs, axis=0).astype(np.float32)


@dataclass
class QAData:
    """Questions with their clip feature and embeddings, ready to batch."""

    clip: torch.Tensor  # (q, Dc) float32 mean shot feature of the question's clips
    question: torch.Tensor  # (q, Dt) float32
    answers: torch.Tensor  # (q, n, Dt) float32
    correct: torch.Tensor  # (q,) int64
    splits: list[str]  # per question, from the file or a seeded split of its movie
    encoder: str = ""
    encoder_id: str = ""
    report: dict[str, int] = field(default_factory=dict)  # what was left out, and why
    missing_clips: list[str] = field(default_factory=list)  # clip names absent from the store

    def indices(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)

    @classmethod
    def build(
        cls,
        store: FeatureStore,
        encoder: str,
        items: list[QAItem],
        embed: Callable[[str], np.ndarray],
        *,
        seed: int = 0,
        progress: bool = True,
    ) -> QAData:
        encoder_id = check_encoder(store, encoder)
        have = set(store.video_ids(encoder=encoder))
        n_answers = max((len(q.answers) for q in items), default=0)
        names = sorted({c for q in items for c in q.clips})
        missing = [c for c in names if clip_id(c) not in have]
        feats: dict[str, np.ndarray] = {}
        for name in tqdm(
            [c for c in names if clip_id(c) in have],
            desc="reading clips",
            unit="clip",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ):
            feats[name] = store.features(clip_id(name), encoder).astype(np.float32)
        report = {
            "questions_in_file": len(items),
            "no_correct_answer": 0,
            "no_clips": 0,
            "clips_all_missing": 0,
            "other_answer_count": 0,
        }
        kept = []
        for q in items:
            if q.correct is None:
                report["no_correct_answer"] += 1
            elif len(q.answers) != n_answers:
                report["other_answer_count"] += 1
            elif not q.clips:
                report["no_clips"] += 1
            elif not any(c in feats for c in q.clips):
                report["clips_all_missing"] += 1
            else:
                kept.append(q)
        if not kept:
            raise TrainerError(
                f"none of the {len(items)} questions has a clip with features of {encoder!r} "
                f"in {store.url} ({len(missing)} of {len(names)} clips missing): extract the "
                "clips (MovieQA's video_clips) into the store, named by their file stems"
            )
        movie_split: dict[str, str | None] = {}
        for q in kept:
            if movie_split.get(q.movie) is None:
                movie_split[q.movie] = q.split
        movie_split = assign_splits(movie_split, seed=seed)
        clip = np.stack(
            [np.concatenate([feats[c] for c in q.clips if c in feats]).mean(0) for q in kept]
        )
        question = np.stack([embed(q.question) for q in kept])
        answers = np.stack([np.stack([embed(a) for a in q.answers]) for q in kept])
        report.update({"questions": len(kept), "clips": len(names), "clips_missing": len(missing)})
        return cls(
            torch.from_numpy(clip),
            torch.from_numpy(question),
            torch.from_numpy(answers),
            torch.tensor([q.correct for q in kept], dtype=torch.long),
            [q.split or movie_split[q.movie] for q in kept],
            encoder,
            encoder_id,
            report,
            missing,
        )


def get_batch(data: QAData, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(clip B x Dc, question B x Dt, answers B x n x Dt, targets B) of questions idx."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    return data.clip[idx], data.question[idx], data.answers[idx], data.correct[idx]


@torch.no_grad()
def correct(model: QAModel, data: QAData, idx: np.ndarray) -> np.ndarray:
    """Per question of ``idx``: whether the model chose the right answer (bool)."""
    was_training = model.training
    model.eval()
    right = [np.zeros(0, bool)]
    for start in range(0, len(idx), 512):
        *inputs, targets = get_batch(data, idx[start : start + 512])
        right.append((model(*inputs)[0].argmax(1) == targets).numpy())
    model.train(was_training)
    return np.concatenate(right)


def evaluate(model: QAModel, data: QAData, idx: np.ndarray) -> float:
    """Accuracy on questions idx."""
    return float(correct(model, data, idx).sum()) / max(len(idx), 1)


def train(
    data: QAData,
    *,
    train_config: QATrainConfig = QATrainConfig(),
    out: str | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[QAModel, dict[str, Any]]:
    """Train on the training questions, validate on val, score test (val when no test)."""
    train_idx, val_idx = data.indices("train"), data.indices("val")
    if not len(train_idx):
        raise TrainerError("no usable training questions: check the splits in the QA file")
    config = QAConfig(clip_dim=data.clip.shape[1], text_dim=data.question.shape[1])
    ckpt = None
    if resume and out is not None:
        ckpt = resume_checkpoint(out, KIND, encoder=data.encoder, encoder_id=data.encoder_id)
        if ckpt is not None and _config(ckpt) != config:
            raise TrainerError(
                f"{out} holds a QA head of another shape: resume with the "
                "same word vectors and encoder"
            )
    torch.manual_seed(train_config.seed)
    model = QAModel(config)
    train_clips = data.clip[torch.as_tensor(train_idx)]
    model.set_clip_stats(train_clips.mean(0), train_clips.std(0).nan_to_num(1.0).clamp_min(1e-4))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay
    )
    state = LoopState()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = LoopState(step=int(ckpt["step"]))

    def get(step: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([train_config.seed, 4, step])
        return get_batch(data, rng.choice(train_idx, train_config.batch_size))

    def validate() -> dict[str, Any]:
        return {"accuracy": evaluate(model, data, val_idx)} if len(val_idx) else {}

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
            )
            save_checkpoint(out, KIND, payload)

    loop = LoopConfig.of(train_config, "train qa")
    state = run(
        model,
        optimizer,
        loop,
        get,
        evaluate=validate,
        save=save,
        state=state,
        progress=progress,
        log=log,
    )
    step = state.step
    test_idx, split = data.indices("test"), "test"
    if not len(test_idx):
        test_idx, split = val_idx, "val"
    if not len(test_idx):
        raise TrainerError("no val or test questions to score on: check the QA file's splits")
    metrics = {
        "accuracy": evaluate(model, data, test_idx),
        "questions": int(len(test_idx)),
        "split": split,
        "chance": 1.0 / data.answers.shape[1],
        "train_questions": int(len(train_idx)),
        "steps": step,
        "encoder": data.encoder,
        **{k: v for k, v in data.report.items() if k != "questions"},
    }
    return model, metrics


def _config(ckpt: dict[str, Any]) -> QAConfig:
    raw = dict(ckpt["config"])
    return QAConfig(**{**raw, "channels": tuple(raw["channels"])})


def load_model(path: str, store: FeatureStore, encoder: str) -> tuple[QAModel, dict[str, Any]]:
    """A trained QA head, refusing another model's checkpoint or another encoder's."""
    ckpt = load_checkpoint(path, KIND)
    check_checkpoint_encoder(ckpt, path, encoder, check_encoder(store, encoder))
    model = QAModel(_config(ckpt))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
