"""`--resume` continues only a checkpoint of the same kind and encoder; anything else at
--out is refused before training and left byte for byte as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from storyline.deploy.cli import main
from storyline.trainers.planted import PlantedConfig, write_planted_store
from storyline.trainers.questions import QuestionConfig, questions_from_store, save_questions

from .trailer_frames import write_trailer_store

DIM = 16
PLANTED = PlantedConfig(movies=12, min_shots=30, max_shots=40, dim=DIM)
FAST = ["--quiet", "--threads", "1", "--eval-interval", "2"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two stores whose features share the name 'planted' but not the encoder id."""
    root = tmp_path_factory.mktemp("resume")
    out = {}
    for name, ident in (("a", "planted-0"), ("b", "planted-1")):
        url = str(root / f"{name}.zarr")
        store = write_planted_store(url, PLANTED, encoder_id=ident)
        save_questions(store, questions_from_store(store, QuestionConfig(context=4)))
        out[name] = url
    return out


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _tags(store: str, out: Path, *extra: str) -> list[str]:
    return ["train", "tags", "--store", store, "--out", str(out), "--hidden", "8", *FAST, *extra]


def test_resume_refuses_another_models_file_and_leaves_it(
    stores: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lstm = tmp_path / "lstm.pt"
    assert (
        main(
            [
                "train",
                "temporal",
                "--store",
                stores["a"],
                "--context",
                "4",
                "--steps",
                "2",
                "--hidden",
                "8",
                "--out",
                str(lstm),
                *FAST,
            ]
        )
        == 0
    )
    capsys.readouterr()
    before = lstm.read_bytes()
    # the case: a tag run pointed at a temporal model
    assert main(_tags(stores["a"], lstm, "--resume", "--steps", "2")) == 2
    err = capsys.readouterr().err
    assert "holds a 'temporal' model" in err and "another --out" in err
    assert lstm.read_bytes() == before
    # an unreadable file is no "nothing to resume" either
    garbage = tmp_path / "notes.pt"
    garbage.write_bytes(b"my notes, not a checkpoint")
    assert main(_tags(stores["a"], garbage, "--resume", "--steps", "2")) == 2
    assert "not a storyline checkpoint" in capsys.readouterr().err
    assert garbage.read_bytes() == b"my notes, not a checkpoint"


def test_resume_refuses_features_of_another_encoder(
    stores: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tags.pt"
    assert main(_tags(stores["a"], out, "--steps", "2")) == 0
    capsys.readouterr()
    before = out.read_bytes()
    assert main(_tags(stores["b"], out, "--resume", "--steps", "4")) == 2
    err = capsys.readouterr().err
    assert "planted-0" in err and "planted-1" in err and "cannot resume" in err
    assert out.read_bytes() == before


def test_resume_starts_fresh_without_a_file_and_continues_its_own(
    stores: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "tags.pt"
    assert main(_tags(stores["a"], out, "--resume", "--steps", "2")) == 0
    assert _last_json(capsys.readouterr().out)["steps"] == 2
    assert main(_tags(stores["a"], out, "--resume", "--steps", "4")) == 0
    assert _last_json(capsys.readouterr().out)["steps"] == 4
    assert torch.load(out, weights_only=True)["step"] == 4


def test_encoder_resume_refuses_a_tag_model(
    stores: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tags_ckpt = tmp_path / "tags.pt"
    assert main(_tags(stores["a"], tags_ckpt, "--steps", "2")) == 0
    capsys.readouterr()
    before = tags_ckpt.read_bytes()
    trailers = str(tmp_path / "trailers.zarr")
    write_trailer_store(trailers, videos=4, shots=(2, 3), size=16)
    assert (
        main(
            [
                "train",
                "encoder",
                "--store",
                trailers,
                "--out",
                str(tags_ckpt),
                "--resume",
                "--steps",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "holds a 'tags' model" in capsys.readouterr().err
    assert tags_ckpt.read_bytes() == before
