"""Checkpoints shared by every trainer: one dict of plain types and tensors.

A checkpoint holds the model state, optimizer state, configs, step, the encoder it was
trained on (name and id) and anything else needed to rebuild the model (a tag
vocabulary). It is loaded with ``weights_only=True``: no pickled code ever runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .data import TrainerError

FORMAT = "storyline-checkpoint"


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted save leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "kind": kind, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Load a checkpoint of ``kind``, refusing another model's or a foreign file."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"no checkpoint at {path}: train one with `storyline train {kind}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign or damaged file
        raise TrainerError(f"{path} is not a storyline checkpoint ({exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainerError(f"{path} is not a storyline checkpoint")
    if ckpt.get("kind") != kind:
        raise TrainerError(
            f"{path} is a checkpoint of the {ckpt.get('kind')!r} model, not {kind!r}: pass a "
            f"checkpoint written by `storyline train {kind}`"
        )
    return ckpt


def check_checkpoint_encoder(
    ckpt: dict[str, Any], path: str | os.PathLike, encoder: str, encoder_id: str
) -> None:
    """Features of another encoder mean nothing to a trained model: refuse them."""
    if ckpt.get("encoder_id") != encoder_id:
        raise TrainerError(
            f"{path} was trained on features of encoder {ckpt.get('encoder')!r} "
            f"(id {ckpt.get('encoder_id')}), but {encoder!r} in this store is {encoder_id}: "
            "evaluate it on the encoder it was trained on"
        )
