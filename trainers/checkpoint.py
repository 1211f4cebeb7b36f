"""Checkpoints shared by every trainer: one dict of plain types and tensors.

A checkpoint holds the model state, optimizer state, configs, step, the encoder it was
trained on (name and id) and anything else needed to rebuild the model (a tag
vocabulary). It is loaded with ``weights_only=True``: no pickled code ever runs.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..extractor.weights import CHECKPOINT_FORMAT, write_checkpoint
from .data import TrainerError

FORMAT = CHECKPOINT_FORMAT


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted save leaves the old one."""
    write_checkpoint(path, kind, payload)


def training_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    config: Any,
    train_config: Any,
    step: int,
    encoder: str,
    encoder_id: str,
    **extra: Any,
) -> dict[str, Any]:
    """A head trained on stored features: weights, optimizer, configs (dataclasses), step,
    the encoder whose features it read, and what else its kind needs to be rebuilt."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": asdict(config),
        "train_config": asdict(train_config),
        "step": step,
        "encoder": encoder,
        "encoder_id": encoder_id,
        **extra,
    }


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Any storyline checkpoint, whatever its kind; a foreign or damaged file is refused."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a foreign or damaged file
        raise TrainerError(
            f"{path} is not a storyline checkpoint ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainerError(f"{path} is not a storyline checkpoint")
    return ckpt


def load_checkpoint(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Load a checkpoint of ``kind``, refusing another model's or a foreign file."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"no checkpoint at {path}: train one with `storyline train {kind}`")
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") != kind:
        raise TrainerError(
            f"{path} is a checkpoint of the {ckpt.get('kind')!r} model, not {kind!r}: pass a "
            f"checkpoint written by `storyline train {kind}`"
        )
    return ckpt


def resume_checkpoint(
    path: str | os.PathLike,
    kind: str,
    *,
    encoder: str | None = None,
    encoder_id: str | None = None,
) -> dict[str, Any] | None:
    """The checkpoint a ``--resume`` run continues from, or None to start fresh.

    Only a missing file means "nothing to resume yet". Anything else that is not a
    ``kind`` checkpoint (of features of ``encoder_id``, when given) is refused before any
    training, so the run never overwrites another model's file.
    """
    path = Path(path)
    if not path.exists():
        return None
    keep = f"{path} is left as it is: write to another --out, or remove the file to train afresh"
    try:
        ckpt = read_checkpoint(path) if path.is_file() else None
    except TrainerError as exc:
        raise TrainerError(f"cannot resume: {exc}; {keep}") from exc
    if ckpt is None:
        raise TrainerError(f"cannot resume: {path} is not a file; {keep}")
    if ckpt.get("kind") != kind:
        raise TrainerError(
            f"cannot resume a {kind!r} model from {path}: it holds a "
            f"{ckpt.get('kind')!r} model; {keep}"
        )
    if encoder_id is not None and ckpt.get("encoder_id") != encoder_id:
        raise TrainerError(
            f"cannot resume from {path}: it was trained on features of encoder "
            f"{ckpt.get('encoder')!r} (id {ckpt.get('encoder_id')}), not {encoder!r} "
            f"(id {encoder_id}); {keep}"
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
