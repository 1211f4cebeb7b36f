"""Tag classifiers: metrics on known answers, both methods learn, CLI output, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from storyline.deploy.cli import main
from storyline.store import FeatureStore
from storyline.trainers.data import TrainerError
from storyline.trainers.planted import PlantedConfig, write_planted_store
from storyline.trainers.tags import (
    TagData,
    TagModel,
    TagsConfig,
    TagsTrainConfig,
    TagVocab,
    load_model,
    mean_average_precision,
    recall_at_k,
    train,
)

DIM = 32
PLANTED = PlantedConfig(movies=24, min_shots=30, max_shots=50, dim=DIM, tag_strength=0.7)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("tags") / "s.zarr")
    write_planted_store(path, PLANTED)
    return path


def test_recall_at_3_and_map_on_known_rankings() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])
    labels = np.array([[1, 0, 0, 1], [1, 0, 0, 0]], dtype=np.float32)
    # video 0: 1 of its 2 tags in its top 3; video 1: its one tag ranked last
    assert recall_at_k(scores, labels, 3) == pytest.approx((0.5 + 0.0) / 2)
    # class 0: positives ranked 1st and 2nd -> AP 1; class 3: one positive ranked 1st of 2
    # by score 0.9 (video 1, negative) then 0.1 (video 0, positive) -> AP 0.5
    assert mean_average_precision(scores, labels) == pytest.approx((1.0 + 0.5) / 2)


def test_model_averages_scores_over_real_shots_only() -> None:
    model = TagModel(TagsConfig(method="average", feature_dim=4, n_genres=2, n_keywords=1))
    model.eval()
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    padded = x.clone()
    padded[0, 3:] = 100.0
    assert torch.allclose(model(x, mask)[0], model(padded, mask)[0])
    assert torch.allclose(model(x, mask)[0], model(x[:, :3], mask[:, :3])[0], atol=1e-6)
    lstm = TagModel(TagsConfig(method="lstm", feature_dim=4, n_genres=2, n_keywords=1, hidden=8))
    lstm.eval()
    assert torch.allclose(lstm(x, mask)[0], lstm(padded, mask)[0])
    with pytest.raises(TrainerError, match="--method"):
        TagModel(TagsConfig(method="svm"))


def test_vocab_comes_from_training_videos() -> None:
    vocab = TagVocab.from_videos(
        [
            {"genres": ["drama"], "keywords": ["love", "war"]},
            {"genres": ["comedy"], "keywords": ["love"]},
        ],
        min_keyword_videos=2,
    )
    assert vocab == TagVocab(("comedy", "drama"), ("love",))
    y = vocab.encode({"genres": ["drama", "western"], "keywords": ["love"]})
    assert y.tolist() == [0, 1, 1]


@pytest.mark.parametrize("method", ["average", "lstm"])
def test_both_methods_beat_chance(store_path: str, method: str, tmp_path: Path) -> None:
    store = FeatureStore(store_path, mode="r")
    data = TagData.from_store(store, "planted", progress=False)
    config = TagsTrainConfig(steps=150, eval_interval=150, seq_len=32)
    out = tmp_path / f"{method}.pt"
    _, metrics = train(
        data, method=method, hidden=32, train_config=config, out=str(out), progress=False
    )
    assert metrics["split"] == "test" and metrics["videos"] == 6
    for group in ("genres", "keywords"):
        m = metrics[group]
        assert m["recall@3"] > m["chance_recall@3"] + 0.1, (group, m)
        assert 0 < m["map"] <= 1
    model, vocab, ckpt = load_model(str(out), store, "planted")
    assert vocab == data.vocab and ckpt["step"] == 150 and model.config.method == method


def test_cli_prints_one_json_line(store_path: str, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "tags.pt")
    assert (
        main(
            [
                "train",
                "tags",
                "--store",
                store_path,
                "--method",
                "lstm",
                "--steps",
                "3",
                "--hidden",
                "8",
                "--out",
                out,
                "--quiet",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert set(metrics["genres"]) >= {"recall@3", "map"}
    assert set(metrics["keywords"]) >= {"recall@3", "map"}
    # a tags checkpoint is no temporal model
    assert main(["eval", "temporal", "--store", store_path, "--checkpoint", out]) == 2
    assert "'tags' model, not 'temporal'" in capsys.readouterr().err


def test_untagged_store_is_refused(tmp_path: Path, capsys) -> None:
    path = str(tmp_path / "untagged.zarr")
    store = FeatureStore(path, mode="a")
    store.register_encoder("planted", "p")
    attrs = {"source": "a.mp4", "tags": {"genres": [], "keywords": [], "split": None}}
    store.begin_video("a", attrs=attrs).finish(
        shots=np.array([[0, 5]]),
        features=np.zeros((1, 8)),
        encoder_name="planted",
        encoder_id="p",
        attrs=attrs,
    )
    assert main(["train", "tags", "--store", path, "--out", str(tmp_path / "t.pt")]) == 2
    assert "genres or keywords" in capsys.readouterr().err
