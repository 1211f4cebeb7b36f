"""The encoder's weights format: trunk weights bound to their preprocessing, with an id.

One home for what the extractor reads (``extract --checkpoint``), the importer writes
(``encoder import-bninception``) and the encoder trainer writes and reads (``train
encoder``, ``--init``): a storyline checkpoint file (a dict of plain types and tensors,
loaded with ``weights_only=True`` so no pickled code runs) whose encoder part is

    {"encoder": BN-Inception trunk state dict, "preprocessing": Preprocessing.to_dict(),
     "encoder_id": 16 hex digits, "architecture": "bn_inception"}

beside whatever the writer adds (a tag head, optimizer state, the Caffe source file).
Preprocessing (channel order, value range, mean/std, input size) travels with the
weights, so nothing can pair them with the wrong preprocessing, and the encoder id (a
hash of both) names exactly what produced a store's features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

ARCHITECTURE = "bn_inception"
CHECKPOINT_FORMAT = "storyline-checkpoint"  # every storyline checkpoint file says so


class EncoderError(ValueError):
    """A file that cannot be turned into an encoder; the message says why."""


@dataclass(frozen=True)
class Preprocessing:
    """How frames become the network's input. Decoded frames arrive as RGB uint8."""

    input_size: int = 224  # square crop side fed to the network
    channel_order: Literal["RGB", "BGR"] = "RGB"
    value_scale: float = 1.0  # pixel values are mapped to [0, value_scale]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # in channel_order
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise EncoderError(f"unknown preprocessing fields {sorted(unknown)}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """(N, S, S, 3) RGB uint8 crops -> normalised (N, 3, S, S) float32, channels-last."""
        if frames.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"expected (N, {self.input_size}, {self.input_size}, 3) frames, got {frames.shape}"
            )
        x = torch.from_numpy(np.ascontiguousarray(frames))
        if self.channel_order == "BGR":
            x = x.flip(-1)
        x = x.permute(0, 3, 1, 2).float()  # N x 3 x S x S, channels-last memory
        scale = self.value_scale / 255.0
        mean = torch.tensor(self.mean).view(1, 3, 1, 1) / scale
        std = torch.tensor(self.std).view(1, 3, 1, 1) / scale
        return (x - mean) / std


def _state_digest(state: dict[str, torch.Tensor]) -> hashlib._Hash:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        digest.update(tensor.numpy().tobytes())
    return digest


def encoder_id(state: dict[str, torch.Tensor], preprocessing: Preprocessing) -> str:
    """16 hex digits naming these exact weights with this exact preprocessing."""
    digest = _state_digest(state)
    digest.update(json.dumps(preprocessing.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class EncoderWeights:
    """A trunk's weights with their preprocessing: what an encoder file holds."""

    state: dict[str, torch.Tensor]  # BN-Inception trunk state dict (no ``fc.`` head)
    preprocessing: Preprocessing
    architecture: str = ARCHITECTURE

    @property
    def id(self) -> str:
        return encoder_id(self.state, self.preprocessing)

    def payload(self) -> dict[str, Any]:
        """The encoder part of a checkpoint dict (CPU tensors)."""
        state = {k: v.detach().cpu() for k, v in self.state.items()}
        return {
            "encoder": state,
            "preprocessing": self.preprocessing.to_dict(),
            "encoder_id": encoder_id(state, self.preprocessing),
            "architecture": self.architecture,
        }

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Any, path: str | os.PathLike, *, bare: bool = True
    ) -> EncoderWeights:
        """The weights of a loaded file: a storyline encoder checkpoint, or (``bare``) a
        plain BN-Inception state dict, which gets the default preprocessing."""
        if not isinstance(checkpoint, dict):
            raise EncoderError(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
        if "encoder" not in checkpoint:
            if not bare:
                raise EncoderError(
                    f"{path} is not a storyline encoder file: convert Caffe ImageNet weights "
                    "with `storyline encoder import-bninception FILE --out imagenet.pth` first"
                )
            return cls(trunk(checkpoint), Preprocessing())
        architecture = checkpoint.get("architecture", ARCHITECTURE)
        if architecture != ARCHITECTURE:
            raise EncoderError(f"{path} holds a {architecture!r}, not {ARCHITECTURE!r}")
        return cls(
            trunk(checkpoint["encoder"]),
            Preprocessing.from_dict(checkpoint.get("preprocessing", {})),
            architecture,
        )


def trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without its classification head (``fc.*``): features only."""
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def load_file(path: str | os.PathLike) -> Any:
    """Load a checkpoint without executing pickled code, with errors a person can act on."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncoderError(
            f"cannot read checkpoint {path}: {first_line}. It must be a torch.save()d state "
            "dict or a storyline checkpoint; files that need pickled code are refused"
        ) from exc


def read_weights(path: str | os.PathLike, *, bare: bool = True) -> EncoderWeights:
    """The encoder weights of a file (see :meth:`EncoderWeights.from_checkpoint`)."""
    return EncoderWeights.from_checkpoint(load_file(path), path, bare=bare)


def write_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> None:
    """Write a storyline checkpoint of ``kind`` atomically (temp file + rename): an
    interrupted save leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, **payload}, tmp)
    os.replace(tmp, path)


def save_weights(
    path: str | os.PathLike, weights: EncoderWeights, *, kind: str, **extra: Any
) -> str:
    """Write an encoder file (with ``extra`` entries beside the weights); its encoder id."""
    payload = weights.payload()
    write_checkpoint(path, kind, {**payload, **extra})
    return payload["encoder_id"]
