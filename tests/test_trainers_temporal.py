"""Next-shot prediction: model shapes, baseline, training on a store, checkpoints, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from storyline.deploy.cli import main
from storyline.store import FeatureStore
from storyline.trainers.checkpoint import save_checkpoint
from storyline.trainers.data import TrainerError
from storyline.trainers.planted import PlantedConfig, write_planted_store
from storyline.trainers.questions import QuestionConfig, questions_from_store, save_questions
from storyline.trainers.schedule import lr_at
from storyline.trainers.temporal import (
    MODELS,
    NextShotModel,
    TemporalConfig,
    TemporalData,
    TemporalTrainConfig,
    cosine_baseline,
    evaluate,
    get_batch,
    load_model,
    model_config,
    resampled_batch,
    score_split,
    train,
)

DIM = 32
# few camera set-ups shared by all movies: the mean of an A B A B context is as near to
# B as to A, and a shared palette puts same-set-up distractors from other scenes in play
PLANTED = PlantedConfig(movies=40, min_shots=80, max_shots=120, dim=DIM, palette=8, seed=0)
SMALL_MODEL = TemporalConfig(feature_dim=DIM, hidden=64, conv_channels=(64, 32))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("temporal") / "s.zarr")
    store = write_planted_store(path, PLANTED)
    for setting in ("in-movie", "cross-movie"):
        save_questions(store, questions_from_store(store, QuestionConfig(setting=setting)))
    return path


def data_for(store_path: str, setting: str = "in-movie") -> TemporalData:
    store = FeatureStore(store_path, mode="r")
    from storyline.trainers.questions import load_questions

    return TemporalData.from_store(
        store, "planted", load_questions(store, f"{setting}-m8-n32-s0"), progress=False
    )


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_model_scores_every_candidate() -> None:
    model = NextShotModel(TemporalConfig(feature_dim=DIM, hidden=16, conv_channels=(8,)))
    context, candidates = torch.randn(5, 8, DIM), torch.randn(5, 32, DIM)
    scores, loss = model(context, candidates)
    assert scores.shape == (5, 32) and loss is None
    _, loss = model(context, candidates, torch.zeros(5, dtype=torch.long))
    assert loss.ndim == 0 and loss.item() > 0
    # a candidate's score depends on that candidate only (1x1 convolutions)
    model.eval()
    moved = candidates.clone()
    moved[:, 3] += 1
    a, b = model(context, candidates)[0], model(context, moved)[0]
    assert torch.allclose(a[:, :3], b[:, :3]) and not torch.allclose(a[:, 3], b[:, 3])


def test_cosine_baseline_picks_the_candidate_nearest_the_mean() -> None:
    context = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    candidates = torch.tensor([[[1.0, -1.0], [1.0, 1.0], [-1.0, 0.0]]])
    assert cosine_baseline(context, candidates).argmax(1).item() == 1


def test_lr_schedule_warms_up_then_decays() -> None:
    config = TemporalTrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, config) == pytest.approx(1e-4)
    assert lr_at(10, config) == pytest.approx(1e-3)
    assert lr_at(100, config) == pytest.approx(1e-4)


def test_batches_are_the_saved_questions(store_path: str) -> None:
    data = data_for(store_path, "cross-movie")
    qset, i = data.qset, 11
    context, candidates, targets = get_batch(data.table, data.rows, [i])
    movie = data.table.video(int(qset.video[i])).float()
    t = int(qset.target[i])
    assert torch.equal(context[0], movie[t - 8 : t])
    assert torch.equal(candidates[0, targets[0]], movie[t])
    j = 5
    other = data.table.video(int(qset.cand_video[i, j])).float()[int(qset.cand_shot[i, j])]
    assert torch.equal(candidates[0, j], other)
    # resampled training questions keep the context and the true shot
    batch = qset.indices("train")[:4]
    ctx2, cand2, tgt2 = resampled_batch(data, batch, np.random.default_rng(0))
    ctx1, cand1, tgt1 = get_batch(data.table, data.rows, batch)
    assert torch.equal(ctx1, ctx2)
    assert torch.equal(cand1[torch.arange(4), tgt1], cand2[torch.arange(4), tgt2])


def test_lstm_learns_what_the_mean_cannot(store_path: str) -> None:
    data = data_for(store_path)
    model, metrics = train(
        data,
        model_config=SMALL_MODEL,
        train_config=TemporalTrainConfig(steps=600, eval_interval=100),
        progress=False,
    )
    result = score_split(model, data)
    assert result["questions"] == len(data.qset.indices("test"))
    assert result["baseline_accuracy"] > 1 / 32
    assert result["accuracy"] > result["baseline_accuracy"] + 0.05, result
    assert metrics["val_accuracy"] > metrics["val_baseline_accuracy"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_model_generalises_from_few_movies(tmp_path: Path, seed: int) -> None:
    """Nine training movies whose scenes each have set-ups of their own: nothing to
    memorise, only the rule (the shot two back returns). The similarity scorer finds it in
    every draw; the paper's model, which sees whole features, does much less well."""
    config = PlantedConfig(movies=14, min_shots=60, max_shots=80, dim=DIM, palette=0, seed=seed)
    store = write_planted_store(str(tmp_path / "s.zarr"), config)
    qset = questions_from_store(store, QuestionConfig(setting="in-movie", seed=seed))
    data = TemporalData.from_store(store, "planted", qset, progress=False)
    results = {}
    for kind in MODELS:
        model, _ = train(
            data,
            model_config=model_config(kind, context=8, feature_dim=DIM, hidden=64),
            train_config=TemporalTrainConfig(steps=200, seed=seed),
            progress=False,
        )
        results[kind] = score_split(model, data)
    similarity, paper = results["similarity"], results["paper"]
    assert similarity["accuracy"] >= 2 * similarity["baseline_accuracy"], results
    assert similarity["accuracy"] > paper["accuracy"] + 0.1, results


class Interrupted(Exception):
    pass


def test_resume_matches_an_uninterrupted_run(store_path: str, tmp_path: Path) -> None:
    data = data_for(store_path)
    model_config = TemporalConfig(feature_dim=DIM, hidden=16, conv_channels=(16,), dropout=0.0)
    config = TemporalTrainConfig(steps=10, eval_interval=5, warmup=2)
    straight, _ = train(data, model_config=model_config, train_config=config, progress=False)

    def crash_at_5(message: str) -> None:  # called just after the step-5 checkpoint
        if message.startswith("step 5:"):
            raise Interrupted

    out = tmp_path / "r.pt"
    with pytest.raises(Interrupted):
        train(
            data,
            model_config=model_config,
            train_config=config,
            out=str(out),
            progress=False,
            log=crash_at_5,
        )
    assert torch.load(out, weights_only=True)["step"] == 5
    resumed, metrics = train(
        data,
        model_config=model_config,
        train_config=config,
        out=str(out),
        resume=True,
        progress=False,
    )
    # the checkpoint holds the best validation pass: step 5, or 10 if that was better
    assert metrics["steps"] == 10 and metrics["best_step"] in (5, 10)
    assert torch.load(out, weights_only=True)["step"] == metrics["best_step"]
    for name, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[name], atol=1e-6), name
    model, ckpt = load_model(str(out), "planted", "planted-0")
    assert ckpt["questions"] == "in-movie-m8-n32-s0"
    assert evaluate(model, data.table, data.rows, data.qset.indices("val"))["questions"] > 0


def test_checkpoints_of_other_models_and_encoders_are_refused(
    store_path: str, tmp_path: Path
) -> None:
    tags_ckpt = tmp_path / "tags.pt"
    save_checkpoint(
        tags_ckpt, "tags", {"model": {}, "encoder": "planted", "encoder_id": "planted-0"}
    )
    with pytest.raises(TrainerError, match="'tags' model, not 'temporal'"):
        load_model(str(tags_ckpt), "planted", "planted-0")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(TrainerError, match="not a storyline checkpoint"):
        load_model(str(foreign), "planted", "planted-0")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(TrainerError, match="not a storyline checkpoint"):
        load_model(str(garbage), "planted", "planted-0")
    data = data_for(store_path)
    out = tmp_path / "t.pt"
    train(
        data,
        model_config=SMALL_MODEL,
        train_config=TemporalTrainConfig(steps=2),
        out=str(out),
        progress=False,
    )
    with pytest.raises(TrainerError, match="trained on features of encoder 'planted'"):
        load_model(str(out), "other", "other-0")


def test_cli_questions_train_eval(store_path: str, tmp_path: Path, capsys) -> None:
    store = str(tmp_path / "cli.zarr")
    write_planted_store(store, PlantedConfig(movies=8, min_shots=40, max_shots=50, dim=DIM))
    assert main(["questions", "--store", store, "--context", "4", "--quiet"]) == 0
    sets = last_json(capsys.readouterr().out)["sets"]
    assert set(sets) == {"in-movie-m4-n32-s0", "cross-movie-m4-n32-s0"}
    out = str(tmp_path / "lstm.pt")
    args = [
        "--store",
        store,
        "--context",
        "4",
        "--steps",
        "4",
        "--hidden",
        "16",
        "--quiet",
        "--threads",
        "1",
    ]
    assert main(["train", "temporal", *args, "--out", out]) == 0
    trained = last_json(capsys.readouterr().out)
    assert trained["setting"] == "in-movie" and trained["steps"] == 4
    for setting in ("in-movie", "cross-movie"):
        assert (
            main(
                [
                    "eval",
                    "temporal",
                    "--store",
                    store,
                    "--checkpoint",
                    out,
                    "--setting",
                    setting,
                    "--quiet",
                ]
            )
            == 0
        )
        result = last_json(capsys.readouterr().out)
        assert result["setting"] == setting and result["chance"] == 1 / 32
        assert {"accuracy", "baseline_accuracy", "questions"} <= set(result)
    # the question set must exist: the message says how to make it
    assert main(["train", "temporal", *args, "--out", out, "--choices", "16"]) == 2
    err = capsys.readouterr().err
    assert "storyline questions" in err and "--choices 16" in err


def test_bad_input_gives_clear_messages(store_path: str, tmp_path: Path, capsys) -> None:
    empty = str(tmp_path / "empty.zarr")
    FeatureStore(empty, mode="a")
    assert main(["questions", "--store", empty]) == 2
    assert "no complete videos" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "temporal",
                "--store",
                empty,
                "--encoder",
                "x",
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )
        == 2
    )
    assert "no complete videos" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "temporal",
                "--store",
                str(tmp_path / "nowhere.zarr"),
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )
        == 2
    )
    assert "no storyline store" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "temporal",
                "--store",
                store_path,
                "--encoder",
                "imagenet",
                "--out",
                str(tmp_path / "x.pt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "encoder 'imagenet' is not in store" in err and "planted" in err
    tags_ckpt = tmp_path / "tags.pt"
    save_checkpoint(tags_ckpt, "tags", {"encoder": "planted", "encoder_id": "planted-0"})
    assert main(["eval", "temporal", "--store", store_path, "--checkpoint", str(tags_ckpt)]) == 2
    assert "not 'temporal'" in capsys.readouterr().err
