"""Shot encoder: a frozen BN-Inception with its preprocessing, encoding crops to features.

The weights file format (weights + preprocessing + encoder id) lives in :mod:`.weights`;
this module turns such a file (or the seeded random initialisation) into an :class:`Encoder`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .models.bninception import FEATURE_DIM, BNInception, bn_inception
from .weights import EncoderError, Preprocessing, encoder_id, load_file, read_weights

RANDOM_SEED = 0

# Re-exported: the weights format lives in .weights; these names are how callers knew it.
__all__ = [
    "FEATURE_DIM",
    "Encoder",
    "EncoderError",
    "Preprocessing",
    "encoder_from_checkpoint",
    "encoder_id",
    "load_checkpoint",
    "load_encoder",
    "random_encoder",
]
load_checkpoint = load_file  # a file's raw dict, loaded without pickled code


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


def encoder_from_checkpoint(
    path: str | Path, *, name: str | None = None, device: str | None = None
) -> Encoder:
    """Rebuild an encoder from a checkpoint file alone.

    Accepts a storyline checkpoint (``{"encoder": state_dict, "preprocessing": {...}}``,
    written by ``storyline train encoder`` and ``storyline encoder import-bninception``) or
    a bare BN-Inception state dict, which gets the default preprocessing.
    """
    weights = read_weights(path)
    module = bn_inception()
    result = module.load_state_dict(weights.state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3])
        unexpected = ", ".join(result.unexpected_keys[:3])
        raise EncoderError(
            f"{path} is not a storyline BN-Inception checkpoint (missing: {missing or '-'}; "
            f"unexpected: {unexpected or '-'}). Convert Caffe ImageNet weights with "
            "`storyline encoder import-bninception`"
        )
    return Encoder(name or Path(path).stem, module, weights.preprocessing, device=device)


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
