"""Shot encoder: BN-Inception weights bound to their preprocessing, with a content id.

Preprocessing (channel order, value range, mean/std, input size) travels with the weights,
so the extractor can never pair weights with the wrong preprocessing, and the encoder id
(a hash of both) names exactly what produced a store's features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .models.bninception import FEATURE_DIM, BNInception, bn_inception

RANDOM_SEED = 0


class EncoderError(ValueError):
    """A checkpoint that cannot be turned into an encoder; the message says why."""


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


def _autocast_default(device: torch.device) -> bool:
    return device.type == "cuda"


class Encoder:
    """A frozen BN-Inception on one device, encoding RGB uint8 crops to 1024-d features.

    Channels-last memory everywhere; bfloat16 autocast on GPU only. On this project's CPUs
    (AVX512-BF16, no AMX) bf16 was slower than fp32 (1.2-1.4 s vs 1.0-1.2 s per 32 frames
    at 224, channels-last, 2 threads), though it agreed with fp32 to a cosine of 0.9997.
    """

    def __init__(
        self,
        name: str,
        module: BNInception,
        preprocessing: Preprocessing,
        *,
        device: str | torch.device | None = None,
        bf16: bool | None = None,
    ) -> None:
        self.name = name
        self.preprocessing = preprocessing
        self.id = encoder_id(module.state_dict(), preprocessing)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.bf16 = _autocast_default(self.device) if bf16 is None else bf16
        self.module = module.eval().to(self.device, memory_format=torch.channels_last)

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) RGB uint8 crops -> (N, 1024) float32 features."""
        if len(frames) == 0:
            return np.zeros((0, FEATURE_DIM), np.float32)
        x = self.preprocessing.to_tensor(frames).to(
            self.device, memory_format=torch.channels_last, non_blocking=True
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features = self.module(x)
        return features.float().cpu().numpy()


def random_encoder(
    *, input_size: int = 224, seed: int = RANDOM_SEED, device: str | None = None
) -> Encoder:
    """The seeded random initialisation: a baseline, named ``random`` so nobody mistakes it."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        module = bn_inception()
    finally:
        torch.random.set_rng_state(generator_state)
    return Encoder("random", module, Preprocessing(input_size=input_size), device=device)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
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


def encoder_from_checkpoint(
    path: str | Path, *, name: str | None = None, device: str | None = None
) -> Encoder:
    """Rebuild an encoder from a checkpoint file alone.

    Accepts a storyline checkpoint (``{"encoder": state_dict, "preprocessing": {...}}``,
    written by ``storyline train encoder`` and ``storyline encoder import-bninception``) or
    a bare BN-Inception state dict, which gets the default preprocessing.
    """
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise EncoderError(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
    if "encoder" in checkpoint:
        state = checkpoint["encoder"]
        preprocessing = Preprocessing.from_dict(checkpoint.get("preprocessing", {}))
    else:
        state, preprocessing = checkpoint, Preprocessing()
    module = bn_inception()
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = module.load_state_dict(backbone, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3])
        unexpected = ", ".join(result.unexpected_keys[:3])
        raise EncoderError(
            f"{path} is not a storyline BN-Inception checkpoint (missing: {missing or '-'}; "
            f"unexpected: {unexpected or '-'}). Convert Caffe ImageNet weights with "
            "`storyline encoder import-bninception`"
        )
    return Encoder(name or Path(path).stem, module, preprocessing, device=device)


def load_encoder(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    input_size: int | None = None,
    device: str | None = None,
) -> Encoder:
    """The encoder a command line asks for: ``random`` or a checkpoint (named after its file
    unless ``name`` is given)."""
    if checkpoint is None:
        if name not in (None, "random"):
            raise EncoderError(
                f"encoder {name!r} needs --checkpoint; without one the encoder is 'random'"
            )
        return random_encoder(input_size=input_size or 224, device=device)
    if name == "random":
        raise EncoderError("the name 'random' is kept for the seeded random encoder")
    encoder = encoder_from_checkpoint(checkpoint, name=name, device=device)
    if input_size is not None and input_size != encoder.input_size:
        raise EncoderError(
            f"{checkpoint} was trained at input size {encoder.input_size}, not {input_size}"
        )
    return encoder
