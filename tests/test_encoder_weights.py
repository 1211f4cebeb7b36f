"""The encoder's weights format, one home for the extractor, the importer and the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from storyline.extractor.encoder import encoder_from_checkpoint
from storyline.extractor.models.bninception import bn_inception
from storyline.extractor.weights import (
    EncoderError,
    EncoderWeights,
    Preprocessing,
    read_weights,
    save_weights,
)
from storyline.trainers.checkpoint import load_checkpoint
from storyline.trainers.data import TrainerError
from storyline.trainers.encoder_train import load_init


def test_saved_weights_come_back_with_their_preprocessing_and_id(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = EncoderWeights(bn_inception().state_dict(), Preprocessing(input_size=64))
    path = tmp_path / "enc.pt"
    ident = save_weights(path, weights, kind="encoder", note="extra entries ride along")
    assert ident == weights.id and len(ident) == 16
    back = read_weights(path)
    assert back.preprocessing == Preprocessing(input_size=64) and back.id == ident
    ckpt = load_checkpoint(path, "encoder")  # a storyline checkpoint like any trainer's
    assert ckpt["encoder_id"] == ident and ckpt["note"] == "extra entries ride along"
    # the extractor and the trainer's --init read the same file the same way
    assert encoder_from_checkpoint(path, device="cpu").id == ident
    state, preprocessing, init_id = load_init(str(path))
    assert init_id == ident and preprocessing == back.preprocessing


def test_bare_state_dicts_and_other_architectures(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = bn_inception().state_dict()
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    assert read_weights(bare).preprocessing == Preprocessing()  # the extractor accepts it
    with pytest.raises(TrainerError, match="import-bninception"):
        load_init(str(bare))  # --init wants weights that carry their preprocessing
    other = tmp_path / "resnet.pt"
    torch.save({"encoder": state, "architecture": "resnet50"}, other)
    with pytest.raises(EncoderError, match="resnet50"):
        read_weights(other)
