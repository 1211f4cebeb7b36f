"""Import the ImageNet BN-Inception weights converted from Caffe into :class:`BNInception`.

The file is ``bn_inception-52deb4733.pth`` (Cadene's ``pretrainedmodels``, used by TSN and
most video papers of its time). Its keys follow the Caffe layer names, e.g.
``inception_3a_double_3x3_1.weight`` and ``inception_3a_double_3x3_1_bn.running_var``;
every conv has a bias; the 1000-class head is ``last_linear`` (``fc`` in some copies);
in the original file the BN tensors are shaped (1, C), later copies squeezed them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..weights import EncoderWeights, Preprocessing
from .bninception import INCEPTION_SPECS, bn_inception

__all__ = [
    "CAFFE_BNINCEPTION_PREPROCESSING",
    "caffe_key_map",
    "caffe_weights",
    "convert_caffe_state_dict",
]

# What the Caffe weights expect as input; it travels with them so an extractor never
# feeds them RGB in [0, 1]. Pixel value = (BGR value in 0..255 - mean) / std.
CAFFE_BNINCEPTION_PREPROCESSING: dict[str, object] = {
    "channel_order": "BGR",
    "value_scale": 255.0,
    "mean": [104.0, 117.0, 128.0],
    "std": [1.0, 1.0, 1.0],
    "input_size": 224,
}

_CAFFE_HEADS = ("last_linear", "fc")
_CONV_PARAMS = ("weight", "bias")
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
_VECTOR_SUFFIXES = ("bias", "bn.weight", "running_mean", "running_var")


def _layer_pairs() -> list[tuple[str, str]]:
    """(Caffe layer name, our BasicConv2d's module path) for every conv+BN layer."""
    pairs = [
        ("conv1_7x7_s2", "conv1"),
        ("conv2_3x3_reduce", "conv2_reduce"),
        ("conv2_3x3", "conv2"),
    ]
    for block, spec in INCEPTION_SPECS.items():
        caffe, ours = f"inception_{block}", f"inception{block}"
        if spec.ch1x1:
            pairs.append((f"{caffe}_1x1", f"{ours}.branch1x1"))
        pairs += [
            (f"{caffe}_3x3_reduce", f"{ours}.branch3x3.0"),
            (f"{caffe}_3x3", f"{ours}.branch3x3.1"),
            (f"{caffe}_double_3x3_reduce", f"{ours}.branch3x3dbl.0"),
            (f"{caffe}_double_3x3_1", f"{ours}.branch3x3dbl.1"),
            (f"{caffe}_double_3x3_2", f"{ours}.branch3x3dbl.2"),
        ]
        if spec.pool_proj:
            pairs.append((f"{caffe}_pool_proj", f"{ours}.branch_pool.1"))
    return pairs


def caffe_key_map() -> dict[str, str]:
    """Caffe file key -> BNInception key, for the trunk (the head is handled apart)."""
    mapping: dict[str, str] = {}
    for caffe, ours in _layer_pairs():
        for p in _CONV_PARAMS:
            mapping[f"{caffe}.{p}"] = f"{ours}.conv.{p}"
        for p in _BN_PARAMS:
            mapping[f"{caffe}_bn.{p}"] = f"{ours}.bn.{p}"
    return mapping


def convert_caffe_state_dict(sd: dict[str, Tensor], *, keep_head: bool = True) -> dict[str, Tensor]:
    """Rename the Caffe file's tensors to BNInception's keys; values are not changed.

    The result loads with ``load_state_dict(strict=True)`` into ``BNInception`` built
    with ``num_classes=1000`` (or ``num_classes=0`` with ``keep_head=False``, or through
    ``bn_inception(weights=...)``, which drops the head itself). Raises ``ValueError``
    naming the keys that are missing or unexpected, so a wrong or truncated file fails
    here rather than as a half-random network.
    """
    mapping = caffe_key_map()
    heads = {h for h in _CAFFE_HEADS if f"{h}.weight" in sd or f"{h}.bias" in sd}
    if len(heads) > 1:
        raise ValueError(f"state dict has two heads, {sorted(heads)}: keep one of them")
    for head in heads:
        for p in _CONV_PARAMS:
            mapping[f"{head}.{p}"] = f"fc.{p}"
    # Caffe-era files predate num_batches_tracked; newer re-saves may carry it.
    ignored = {k for k in sd if k.endswith("_bn.num_batches_tracked")}
    missing = sorted(set(mapping) - set(sd))
    unexpected = sorted(set(sd) - set(mapping) - ignored)
    if missing or unexpected:
        raise ValueError(
            "not the Caffe BN-Inception state dict (bn_inception-52deb4733.pth): "
            f"missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}"
        )
    out: dict[str, Tensor] = {}
    for src, dst in mapping.items():
        if not keep_head and dst.startswith("fc."):
            continue
        value = sd[src]
        # The original file stores BN vectors as (1, C); ours are (C,).
        if dst.endswith(_VECTOR_SUFFIXES) and value.dim() == 2 and value.shape[0] == 1:
            value = value.reshape(-1)
        out[dst] = value
        if dst.endswith("bn.running_var"):
            out[dst.removesuffix("running_var") + "num_batches_tracked"] = torch.tensor(0)
    return out


def caffe_weights(sd: dict[str, Tensor]) -> EncoderWeights:
    """The Caffe file's trunk as storyline encoder weights, bound to the preprocessing the
    Caffe weights expect (BGR, 0-255, mean subtraction); checked by a strict load."""
    state = convert_caffe_state_dict(sd, keep_head=False)
    bn_inception(weights=state)  # strict: no layer is left random
    return EncoderWeights(state, Preprocessing.from_dict(dict(CAFFE_BNINCEPTION_PREPROCESSING)))
