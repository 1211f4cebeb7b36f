"""Next-shot question sets: deterministic, split by movie, saved in the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storyline.store import FeatureStore
from storyline.trainers.data import TrainerError, assign_splits, paper_counts
from storyline.trainers.planted import PlantedConfig, write_planted_store
from storyline.trainers.questions import (
    QuestionConfig,
    build_questions,
    list_questions,
    load_questions,
    questions_from_store,
    save_questions,
)

SMALL = PlantedConfig(movies=9, min_shots=40, max_shots=60, dim=16)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    store = write_planted_store(str(tmp_path_factory.mktemp("q") / "s.zarr"), SMALL)
    # one movie too short for a question with m = 8
    attrs = {"source": "short.mp4", "tags": {"genres": [], "keywords": [], "split": "train"}}
    store.begin_video("short", attrs=attrs).finish(
        shots=np.array([[0, 5], [5, 9], [9, 20]]),
        features=np.zeros((3, 16)),
        encoder_name="planted",
        encoder_id="planted-0",
        attrs=attrs,
    )
    return store


def test_paper_split_proportions() -> None:
    assert paper_counts(508) == (361, 41, 106)
    assert all(min(paper_counts(n)) >= 1 for n in range(3, 40))
    given = {f"m{i:03d}": None for i in range(508)}
    splits = assign_splits(given, seed=3)
    assert [list(splits.values()).count(s) for s in ("train", "val", "test")] == [361, 41, 106]
    assert splits == assign_splits(given, seed=3) != assign_splits(given, seed=4)
    # a manifest's split is kept
    assert assign_splits({"a": "test", "b": None, "c": None}, seed=0)["a"] == "test"


@pytest.mark.parametrize("setting", ["in-movie", "cross-movie"])
def test_questions_are_well_formed_and_split_by_movie(store: FeatureStore, setting: str) -> None:
    config = QuestionConfig(setting=setting, context=8, choices=32, seed=1)
    qset = questions_from_store(store, config)
    assert qset.skipped == {"short": 3} and "short" not in qset.videos
    q = np.arange(len(qset))
    # the answer is the true next shot
    assert (qset.cand_video[q, qset.answer] == qset.video).all()
    assert (qset.cand_shot[q, qset.answer] == qset.target).all()
    assert (qset.target >= config.context).all()
    # distractors are never the true shot or a given one, and are distinct
    is_true = np.zeros_like(qset.cand_shot, dtype=bool)
    is_true[q, qset.answer] = True
    same_movie = qset.cand_video == qset.video[:, None]
    offset = qset.target[:, None] - qset.cand_shot
    assert not (same_movie & ~is_true & (offset >= 0) & (offset <= config.context)).any()
    assert qset.repeated == 0
    for row in range(0, len(qset), 7):
        pairs = set(zip(qset.cand_video[row], qset.cand_shot[row], strict=True))
        assert len(pairs) == config.choices
    # splits are by movie: every candidate comes from a movie of the question's split
    split_of = np.array([qset.splits[v] for v in qset.videos])
    assert (split_of[qset.cand_video] == split_of[qset.video][:, None]).all()
    if setting == "in-movie":
        assert same_movie.all()
    else:
        # (a split of one movie has only in-movie candidates to offer)
        train = qset.indices("train")
        assert (~same_movie[train]).any(axis=1).all()
    counts = qset.counts()
    assert counts["train"] > counts["test"] > 0 and counts["val"] > 0
    # shots are within their movies
    n_shots = np.array([store.status(v).n_shots for v in qset.videos])
    assert (qset.cand_shot < n_shots[qset.cand_video]).all()


def test_deterministic_for_a_seed_and_stable_per_movie() -> None:
    n_shots = {f"m{i}": 40 + i for i in range(6)}
    splits = {v: "train" for v in n_shots}
    config = QuestionConfig(setting="in-movie", context=4, choices=8, seed=5)
    a, b = build_questions(n_shots, splits, config), build_questions(n_shots, splits, config)
    for key in ("video", "target", "cand_video", "cand_shot", "answer"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    other = build_questions(
        n_shots, splits, QuestionConfig(setting="in-movie", context=4, choices=8, seed=6)
    )
    assert not np.array_equal(a.cand_shot, other.cand_shot)
    # adding a movie leaves the other movies' in-movie questions alone
    more = build_questions({**n_shots, "m9": 50}, {**splits, "m9": "train"}, config)
    keep = more.video < len(a.videos)
    assert np.array_equal(more.cand_shot[keep], a.cand_shot)


def test_small_pools_repeat_distractors_and_say_so() -> None:
    config = QuestionConfig(setting="in-movie", context=3, choices=32)
    qset = build_questions({"tiny": 10}, {"tiny": "train"}, config)
    assert qset.repeated == 1 and len(qset) == 7


def test_saved_in_the_store_and_read_back(store: FeatureStore, tmp_path: Path) -> None:
    config = QuestionConfig(setting="cross-movie", context=6, choices=16, seed=2)
    qset = questions_from_store(store, config)
    assert save_questions(store, qset) == "cross-movie-m6-n16-s2"
    reader = FeatureStore(store.url, mode="r")
    assert "cross-movie-m6-n16-s2" in list_questions(reader)
    back = load_questions(reader, qset.name)
    assert back.config == config and back.videos == qset.videos and back.splits == qset.splits
    assert np.array_equal(back.cand_shot, qset.cand_shot)
    assert back.skipped == {"short": 3}
    with pytest.raises(TrainerError, match="storyline questions"):
        load_questions(reader, "in-movie-m8-n32-s0")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(TrainerError, match="setting"):
        QuestionConfig(setting="sideways")
    with pytest.raises(TrainerError, match="--context"):
        QuestionConfig(context=0)
