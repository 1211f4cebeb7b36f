"""Movie QA: MovieQA reader, word vectors, clip features from the store, training, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from storyline.deploy.cli import main
from storyline.store import FeatureStore
from storyline.trainers.data import TrainerError
from storyline.trainers.qa import (
    QAConfig,
    QAData,
    QAModel,
    QATrainConfig,
    TextEmbedder,
    clip_id,
    read_movieqa,
    train,
)

DIM, WORDS = 32, ("red", "green", "blue", "yellow", "purple", "orange")


def write_world(root: Path, *, n_movies: int = 30, missing: int = 4) -> tuple[str, Path, Path]:
    """A store of clips whose features show a colour, questions asking for it, and word
    vectors; the last ``missing`` clips named in the questions are never extracted."""
    rng = np.random.default_rng(0)
    protos = {w: rng.standard_normal(DIM) * 2 for w in WORDS}
    store = FeatureStore(str(root / "s.zarr"), mode="a")
    store.register_encoder("planted", "p-0")
    items, n_clips = [], 0
    splits = ["train"] * (n_movies - 10) + ["val"] * 4 + ["test"] * 6
    for m in range(n_movies):
        for c in range(3):
            colour = WORDS[int(rng.integers(len(WORDS)))]
            name = f"tt{m:07d}.sf-{c * 100:06d}.ef-{c * 100 + 50:06d}.video.mp4"
            if n_clips < (n_movies * 3 - missing):
                n = int(rng.integers(2, 4))
                feats = protos[colour] + rng.standard_normal((n, DIM))
                attrs = {"source": name, "tags": {"genres": [], "keywords": [], "split": None}}
                store.begin_video(clip_id(name), attrs=attrs).finish(
                    shots=np.stack([np.arange(n), np.arange(n) + 1], 1),
                    features=feats,
                    encoder_name="planted",
                    encoder_id="p-0",
                    attrs=attrs,
                )
            n_clips += 1
            wrong = [w for w in WORDS if w != colour]
            answers = [colour, *rng.choice(wrong, size=4, replace=False)]
            order = rng.permutation(5)
            items.append(
                {
                    "qid": f"{splits[m]}:{len(items)}",
                    "question": "What colour is the thing in this scene?",
                    "answers": [f"It is {answers[i]}" for i in order],
                    "correct_index": int(np.flatnonzero(order == 0)[0]),
                    "imdb_key": f"tt{m:07d}",
                    "video_clips": [name],
                    "plot_alignment": [],
                }
            )
    items.append(
        {
            "qid": "train:999",
            "question": "No clip here?",
            "answers": ["a"] * 5,
            "correct_index": 0,
            "imdb_key": "tt9999999",
            "video_clips": [],
        }
    )
    qa_path = root / "qa.json"
    qa_path.write_text(json.dumps(items))
    vocab = set(WORDS) | {"what", "colour", "is", "the", "thing", "in", "this", "scene", "it"}
    kv = KeyedVectors(vector_size=16)
    kv.add_vectors(sorted(vocab), rng.standard_normal((len(vocab), 16)).astype(np.float32))
    vectors = root / "vectors.txt"
    kv.save_word2vec_format(str(vectors), binary=False)
    kv.save_word2vec_format(str(root / "vectors.bin"), binary=True)
    return str(root / "s.zarr"), qa_path, vectors


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    return write_world(tmp_path_factory.mktemp("qa"))


def test_reader_and_embedder(world: tuple[str, Path, Path], tmp_path: Path) -> None:
    _, qa_path, vectors = world
    items = read_movieqa(qa_path)
    assert items[0].split == "train" and len(items[0].answers) == 5
    assert items[0].clips[0].endswith(".video.mp4")
    assert clip_id(items[0].clips[0]) == items[0].clips[0][: -len(".mp4")]
    text, binary = TextEmbedder(vectors), TextEmbedder(vectors.with_suffix(".bin"))
    assert text.dim == 16
    assert np.allclose(text("It is RED"), binary("it is red"), atol=1e-5)
    assert np.allclose(text("red blue"), (text("red") + text("blue")) / 2, atol=1e-6)
    assert not text("zzz").any() and text.unknown == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"qid": "train:1", "answers": []}]))
    with pytest.raises(TrainerError, match="lacks"):
        read_movieqa(bad)
    with pytest.raises(TrainerError, match="no word-vector file"):
        TextEmbedder(tmp_path / "none.txt")


def test_head_shape() -> None:
    model = QAModel(QAConfig(clip_dim=DIM, text_dim=16, channels=(8, 4)))
    assert model.convs[0].in_channels == DIM + 2 * 16
    scores, loss = model(
        torch.randn(3, DIM), torch.randn(3, 16), torch.randn(3, 5, 16), torch.tensor([0, 1, 4])
    )
    assert scores.shape == (3, 5) and loss.ndim == 0


def test_learns_and_counts_missing_clips(world: tuple[str, Path, Path]) -> None:
    store_path, qa_path, vectors = world
    store = FeatureStore(store_path, mode="r")
    data = QAData.build(
        store, "planted", read_movieqa(qa_path), TextEmbedder(vectors), progress=False
    )
    assert data.report["clips_missing"] == 4 and data.report["clips_all_missing"] == 4
    assert data.report["no_clips"] == 1 and len(data.missing_clips) == 4
    # clip feature = mean of the clip's shots
    first = read_movieqa(qa_path)[0]
    expected = store.features(clip_id(first.clips[0]), "planted").astype(np.float32).mean(0)
    assert np.allclose(data.clip[0].numpy(), expected, atol=1e-3)
    _, metrics = train(
        data, train_config=QATrainConfig(steps=300, eval_interval=300), progress=False
    )
    assert metrics["split"] == "test" and metrics["questions"] == 18 - 4
    assert metrics["accuracy"] > 0.6, metrics


def test_cli(world: tuple[str, Path, Path], tmp_path: Path, capsys) -> None:
    store_path, qa_path, vectors = world
    out = str(tmp_path / "qa.pt")
    args = [
        "train",
        "qa",
        "--store",
        store_path,
        "--qa",
        str(qa_path),
        "--word-vectors",
        str(vectors),
        "--out",
        out,
        "--steps",
        "5",
    ]
    assert main([*args, "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"accuracy", "questions"} <= set(metrics) and metrics["clips_missing"] == 4
    assert main(args) == 0  # not quiet: missing clips are reported on stderr
    assert "4 of 90 clips" in capsys.readouterr().err
    # a QA checkpoint is refused by the temporal evaluator
    assert main(["eval", "temporal", "--store", store_path, "--checkpoint", out]) == 2
    assert "'qa' model, not 'temporal'" in capsys.readouterr().err
    # no clip of the file in the store at all
    empty_qa = tmp_path / "other.json"
    empty_qa.write_text(
        json.dumps([{**json.loads(qa_path.read_text())[0], "video_clips": ["nowhere.video.mp4"]}])
    )
    assert main([*args[:5], str(empty_qa), *args[6:]]) == 2
    assert "extract the clips" in capsys.readouterr().err
