"""Next-shot question sets (paper 4.2): m given shots, pick the true next one of n.

A set depends on shot counts only, never on an encoder, and is saved in the store under
``questions/<name>`` so every encoder is scored on exactly the same questions. It is
deterministic for a seed, and each movie draws its questions from its own RNG stream, so
adding a movie to the store does not change another movie's in-movie questions.

Layout of ``questions/<name>`` (plain zarr reads it):

    attrs   config, videos (movie ids; arrays below index into this list), splits,
            skipped (movies too short for a question), counts, complete (written last)
    video       int32 (q,)      movie of the question
    target      int32 (q,)      the true next shot; the context is target-m .. target-1
    cand_video  int32 (q, n)    candidates' movies
    cand_shot   int32 (q, n)    candidates' shots
    answer      int32 (q,)      which candidate is the true one
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import zarr

from ..store import FeatureStore
from .data import SPLITS, TrainerError, assign_splits, stable_seed, video_tags

SETTINGS = ("in-movie", "cross-movie")
GROUP = "questions"


@dataclass(frozen=True)
class QuestionConfig:
    """How a question set is drawn."""

    setting: str = "in-movie"  # where distractors come from: "in-movie" or "cross-movie"
    context: int = 8  # m: consecutive shots given
    choices: int = 32  # n: the true next shot + n-1 distractors
    seed: int = 0  # fixes distractors, answer positions and the seeded movie split
    stride: int = 1  # a question at every stride-th shot of a movie
    max_per_movie: int = 0  # cap on questions per movie (evenly spaced); 0 = no cap

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise TrainerError(
                f"--setting must be one of {', '.join(SETTINGS)}, not {self.setting!r}"
            )
        if self.context < 1 or self.choices < 2 or self.stride < 1 or self.max_per_movie < 0:
            raise TrainerError(
                "need --context >= 1, --choices >= 2, --stride >= 1 and --max-per-movie >= 0"
            )

    @property
    def name(self) -> str:
        extra = (f"-st{self.stride}" if self.stride != 1 else "") + (
            f"-max{self.max_per_movie}" if self.max_per_movie else ""
        )
        return f"{self.setting}-m{self.context}-n{self.choices}-s{self.seed}{extra}"


@dataclass
class QuestionSet:
    """Questions of one setting over a fixed list of movies, split by movie."""

    config: QuestionConfig
    videos: list[str]  # movie ids; the int arrays index into this list
    splits: dict[str, str]  # movie id -> train | val | test
    video: np.ndarray  # (q,) int32 movie of each question
    target: np.ndarray  # (q,) int32 the true next shot; context is target-m .. target-1
    cand_video: np.ndarray  # (q, n) int32 candidates' movies
    cand_shot: np.ndarray  # (q, n) int32 candidates' shots
    answer: np.ndarray  # (q,) int32 index of the true candidate
    skipped: dict[str, int]  # movies too short for a question (m+1 shots, m+2 in-movie)
    repeated: int = 0  # movies whose pool was smaller than n-1, so distractors repeat

    @property
    def name(self) -> str:
        return self.config.name

    def __len__(self) -> int:
        return len(self.video)

    def indices(self, split: str) -> np.ndarray:
        """Question indices of one split (a split is a set of movies)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        wanted = np.array([self.splits[v] == split for v in self.videos], dtype=bool)
        return np.flatnonzero(wanted[self.video]) if len(self.video) else np.array([], int)

    def counts(self) -> dict[str, int]:
        return {s: int(len(self.indices(s))) for s in SPLITS}

    def movie_counts(self) -> dict[str, int]:
        return {s: sum(self.splits[v] == s for v in self.videos) for s in SPLITS}


def _draws_outside(
    rng: np.random.Generator, pool: int, lo: np.ndarray, width: int, k: int
) -> tuple[np.ndarray, bool]:
    """(q, k) draws from range(pool) avoiding rows' blocks [lo, lo + width), distinct
    within a row when the pool allows it; also whether it had to repeat."""
    q, free = len(lo), pool - width
    if free < 1:
        raise TrainerError(f"only {pool} shots to draw distractors from: add movies")
    draws = rng.integers(0, free, size=(q, k))
    draws += width * (draws >= lo[:, None])
    if free < k:
        return draws, True
    if k > 1:
        srt = np.sort(draws, axis=1)
        for row in np.flatnonzero((np.diff(srt, axis=1) == 0).any(axis=1)):
            redraw = rng.choice(free, size=k, replace=False)
            draws[row] = redraw + width * (redraw >= lo[row])
    return draws, False


def _targets(n_shots: int, config: QuestionConfig) -> np.ndarray:
    targets = np.arange(config.context, n_shots, config.stride)
    if config.max_per_movie and len(targets) > config.max_per_movie:
        pick = np.linspace(0, len(targets) - 1, config.max_per_movie).round().astype(int)
        targets = targets[pick]
    return targets


def _with_answer(
    rng: np.random.Generator, true: np.ndarray, distractors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Put the true item at a random position of each row of distractors."""
    q, k = distractors.shape
    answer = rng.integers(0, k + 1, size=q)
    out = np.empty((q, k + 1), dtype=np.int64)
    is_true = np.arange(k + 1)[None, :] == answer[:, None]
    out[is_true] = true
    out[~is_true] = distractors.reshape(-1)
    return out, answer


def build_questions(
    n_shots: dict[str, int], splits: dict[str, str], config: QuestionConfig
) -> QuestionSet:
    """Draw a question set from movies' shot counts and their (movie-level) splits.

    Distractors are never the given shots themselves (a model with memory would reject
    those for free, and the cosine baseline would pick them). Cross-movie distractors
    come from all movies of the question's own split, so no test movie's shots ever
    appear in a training question.
    """
    # a movie needs m + 1 shots for one question, and one more shot to draw from in-movie
    need = config.context + (2 if config.setting == "in-movie" else 1)
    skipped = {v: n for v, n in sorted(n_shots.items()) if n < need}
    videos = [v for v in sorted(n_shots) if v not in skipped]
    k = config.choices - 1
    parts: list[tuple[np.ndarray, ...]] = []
    repeated = 0
    index = {v: i for i, v in enumerate(videos)}
    pools: dict[str, tuple[list[str], np.ndarray]] = {}
    for split in SPLITS:
        members = [v for v in videos if splits[v] == split]
        pools[split] = (members, np.concatenate([[0], np.cumsum([n_shots[v] for v in members])]))
    for vid in videos:
        rng = np.random.default_rng(stable_seed(config.seed, f"{config.setting}/{vid}"))
        targets = _targets(n_shots[vid], config)
        m = config.context
        if config.setting == "in-movie":
            distractors, repeats = _draws_outside(rng, n_shots[vid], targets - m, m + 1, k)
            cands, answer = _with_answer(rng, targets, distractors)
            cand_video = np.full(cands.shape, index[vid])
            cand_shot = cands
        else:
            members, offsets = pools[splits[vid]]
            start = offsets[members.index(vid)]
            true = targets + start
            distractors, repeats = _draws_outside(rng, int(offsets[-1]), true - m, m + 1, k)
            cands, answer = _with_answer(rng, true, distractors)
            owner = np.searchsorted(offsets, cands, side="right") - 1
            cand_video = np.array([index[m] for m in members])[owner]
            cand_shot = cands - offsets[owner]
        repeated += repeats
        parts.append((np.full(len(targets), index[vid]), targets, cand_video, cand_shot, answer))
    if parts:
        cols = [np.concatenate([p[i] for p in parts]).astype(np.int32) for i in range(5)]
    else:
        cols = [
            np.zeros((0,) if i in (0, 1, 4) else (0, config.choices), np.int32) for i in range(5)
        ]
    return QuestionSet(
        config=config,
        videos=videos,
        splits={v: splits[v] for v in videos},
        video=cols[0],
        target=cols[1],
        cand_video=cols[2],
        cand_shot=cols[3],
        answer=cols[4],
        skipped=skipped,
        repeated=repeated,
    )


def movies_in_store(
    store: FeatureStore, *, only: Iterable[str] | None = None
) -> tuple[dict[str, int], dict[str, str | None]]:
    """Complete videos' shot counts and manifest splits (optionally only some ids)."""
    wanted = set(only) if only is not None else None
    infos = [v for v in store.iter_videos() if v.status == "complete"]
    if wanted is not None:
        infos = [v for v in infos if v.id in wanted]
    if not infos:
        raise TrainerError(
            f"store {store.url} has no complete videos"
            + (" among the manifest's ids" if wanted is not None else "")
            + ": run `storyline extract` first (or check its failures with `storyline info`)"
        )
    n_shots = {v.id: int(v.n_shots or 0) for v in infos}
    tags = video_tags(store, n_shots)
    return n_shots, {v: t["split"] for v, t in tags.items()}


def questions_from_store(
    store: FeatureStore, config: QuestionConfig, *, only: Iterable[str] | None = None
) -> QuestionSet:
    """Build (not save) the question set of a store's complete videos."""
    n_shots, given = movies_in_store(store, only=only)
    qset = build_questions(n_shots, assign_splits(given, seed=config.seed), config)
    if not len(qset):
        raise TrainerError(
            f"no movie in {store.url} has the {config.context + 1} shots a question needs "
            f"({len(qset.skipped)} skipped as too short): lower --context"
        )
    return qset


def save_questions(store: FeatureStore, qset: QuestionSet) -> str:
    """Write a question set under questions/<name>; the completion mark goes last."""
    if store.mode == "r":
        raise TrainerError("saving questions needs a store opened for writing")
    group = store.root.require_group(GROUP)
    if qset.name in group:
        del group[qset.name]
    node = group.create_group(qset.name, attributes={"complete": False})
    for key in ("video", "target", "cand_video", "cand_shot", "answer"):
        data = getattr(qset, key)
        chunks = (max(min(len(data), 65536), 1), *data.shape[1:])
        node.create_array(key, data=data, chunks=chunks)
    node.attrs.update(
        {
            "config": asdict(qset.config),
            "videos": qset.videos,
            "splits": qset.splits,
            "skipped": qset.skipped,
            "repeated": qset.repeated,
            "counts": qset.counts(),
            "complete": True,
        }
    )
    return qset.name


def list_questions(store: FeatureStore) -> list[str]:
    """Names of the complete question sets in a store."""
    try:
        group = store.root[GROUP]
    except KeyError:
        return []
    if not isinstance(group, zarr.Group):
        return []
    return sorted(name for name, g in group.groups() if g.attrs.get("complete"))


def load_questions(store: FeatureStore, name: str) -> QuestionSet:
    """A saved question set, checked against the store's current videos."""
    if name not in list_questions(store):
        have = ", ".join(list_questions(store)) or "none"
        setting = name.split("-m")[0]
        raise TrainerError(
            f"no question set {name!r} in store {store.url} (it has: {have}): run `storyline "
            f"questions --store {store.url} --setting {setting} ...` with the same --context, "
            "--choices and --seed first"
        )
    node = store.root[f"{GROUP}/{name}"]
    attrs = dict(node.attrs)
    qset = QuestionSet(
        config=QuestionConfig(**attrs["config"]),
        videos=list(attrs["videos"]),
        splits=dict(attrs["splits"]),
        video=node["video"][:],
        target=node["target"][:],
        cand_video=node["cand_video"][:],
        cand_shot=node["cand_shot"][:],
        answer=node["answer"][:],
        skipped=dict(attrs["skipped"]),
        repeated=int(attrs.get("repeated", 0)),
    )
    gone = [v for v in qset.videos if store.status(v) is None]
    if gone:
        raise TrainerError(
            f"question set {name!r} names {len(gone)} movies no longer in the store "
            f"(e.g. {gone[0]!r}): rebuild it with `storyline questions`"
        )
    return qset


def get_questions(
    store: FeatureStore, config: QuestionConfig, *, build_missing: bool = False
) -> QuestionSet:
    """The saved set for ``config``; built in memory instead when asked and absent (the
    same questions, since they are deterministic)."""
    if build_missing and config.name not in list_questions(store):
        return questions_from_store(store, config)
    return load_questions(store, config.name)
