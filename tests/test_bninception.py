"""BN-Inception: shapes, seeded init that tells images apart, and the Caffe weight import.

The Caffe file's layers are written out here from Cadene's ``pretrainedmodels``
bninception.py, independently of the converter, and checked against a functional
re-implementation of that file's graph, so a renamed, reordered or mis-strided layer
fails here even if converter and module agree with each other.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from storyline.extractor.models.bninception import BNInception, bn_inception
from storyline.extractor.models.bninception_import import (
    CAFFE_BNINCEPTION_PREPROCESSING,
    convert_caffe_state_dict,
)

# block: (in, 1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool proj); 0 = absent.
CAFFE_BLOCKS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 64, 64, 64, 96, 32),
    "3b": (256, 64, 64, 96, 64, 96, 64),
    "3c": (320, 0, 128, 160, 64, 96, 0),
    "4a": (576, 224, 64, 96, 96, 128, 128),
    "4b": (576, 192, 96, 128, 96, 128, 128),
    "4c": (576, 160, 128, 160, 128, 160, 128),
    "4d": (608, 96, 128, 192, 160, 192, 128),
    "4e": (608, 0, 128, 192, 192, 256, 0),
    "5a": (1056, 352, 192, 320, 160, 224, 128),
    "5b": (1024, 352, 192, 320, 192, 224, 128),
}
STRIDE_2_BLOCKS = {"3c", "4e"}
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def caffe_convs() -> list[tuple[str, int, int, int]]:
    """(layer name, in channels, out channels, kernel) of every conv in the Caffe file."""
    layers = [
        ("conv1_7x7_s2", 3, 64, 7),
        ("conv2_3x3_reduce", 64, 64, 1),
        ("conv2_3x3", 64, 192, 3),
    ]
    for block, (cin, c1, r3, c3, rd, cd, proj) in CAFFE_BLOCKS.items():
        p = f"inception_{block}"
        if c1:
            layers.append((f"{p}_1x1", cin, c1, 1))
        layers += [
            (f"{p}_3x3_reduce", cin, r3, 1),
            (f"{p}_3x3", r3, c3, 3),
            (f"{p}_double_3x3_reduce", cin, rd, 1),
            (f"{p}_double_3x3_1", rd, cd, 3),
            (f"{p}_double_3x3_2", cd, cd, 3),
        ]
        if proj:
            layers.append((f"{p}_pool_proj", cin, proj, 1))
    return layers


def fake_caffe_state_dict(*, seed: int = 0, bn_as_row: bool = False) -> dict[str, Tensor]:
    """Random tensors under the Caffe file's exact keys and shapes (BN as (1, C) if asked).

    BN statistics are far from identity so that a BN mapped to the wrong layer shows.
    """
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    for name, cin, cout, k in caffe_convs():
        he_std = math.sqrt(2 / (cin * k * k))
        sd[f"{name}.weight"] = he_std * torch.randn(cout, cin, k, k, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(cout, generator=g)
        bn = {
            "weight": 1 + 0.2 * torch.randn(cout, generator=g),
            "bias": 0.2 * torch.randn(cout, generator=g),
            "running_mean": 0.2 * torch.randn(cout, generator=g),
            "running_var": 0.5 + torch.rand(cout, generator=g),
        }
        for param, value in bn.items():
            sd[f"{name}_bn.{param}"] = value.view(1, -1) if bn_as_row else value
    sd["last_linear.weight"] = 0.01 * torch.randn(1000, 1024, generator=g)
    sd["last_linear.bias"] = 0.01 * torch.randn(1000, generator=g)
    return sd


def caffe_forward(sd: dict[str, Tensor], x: Tensor) -> Tensor:
    """The Caffe model's graph straight from the file's tensors: N x 1024 for 224 input."""

    def cbr(name: str, x: Tensor, stride: int = 1) -> Tensor:
        w = sd[f"{name}.weight"]
        x = F.conv2d(x, w, sd[f"{name}.bias"], stride=stride, padding=w.shape[-1] // 2)
        gamma, beta, mean, var = (sd[f"{name}_bn.{p}"].flatten() for p in BN_PARAMS)
        return F.relu(F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5))

    x = F.max_pool2d(cbr("conv1_7x7_s2", x, 2), 3, 2, ceil_mode=True)
    x = F.max_pool2d(cbr("conv2_3x3", cbr("conv2_3x3_reduce", x)), 3, 2, ceil_mode=True)
    for block, (_, c1, *_rest) in CAFFE_BLOCKS.items():
        p, s = f"inception_{block}", 2 if block in STRIDE_2_BLOCKS else 1
        outs = [cbr(f"{p}_1x1", x)] if c1 else []
        outs.append(cbr(f"{p}_3x3", cbr(f"{p}_3x3_reduce", x), s))
        dbl = cbr(f"{p}_double_3x3_1", cbr(f"{p}_double_3x3_reduce", x))
        outs.append(cbr(f"{p}_double_3x3_2", dbl, s))
        if s == 2:
            outs.append(F.max_pool2d(x, 3, 2, ceil_mode=True))
        elif block == "5b":
            outs.append(cbr(f"{p}_pool_proj", F.max_pool2d(x, 3, 1, 1, ceil_mode=True)))
        else:
            pooled = F.avg_pool2d(x, 3, 1, 1, ceil_mode=True, count_include_pad=True)
            outs.append(cbr(f"{p}_pool_proj", pooled))
        x = torch.cat(outs, 1)
    return F.avg_pool2d(x, 7).flatten(1)


def caffe_input(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] (N x 3 x H x W) -> what the Caffe weights expect."""
    pre = CAFFE_BNINCEPTION_PREPROCESSING
    assert pre["channel_order"] == "BGR"
    mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
    return (rgb.flip(1) * pre["value_scale"] - mean) / std


def two_frames(size: int = 224) -> Tensor:
    """Two visually different frames: a smooth colour gradient, and a red disc on grey."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    gradient = torch.stack([xs, 0.5 * (xs + ys), 1 - ys])
    disc = (((xs - 0.4) ** 2 + (ys - 0.6) ** 2) < 0.08).float()
    red_disc = torch.stack([0.3 + 0.6 * disc, 0.3 * (1 - disc) + 0.1, 0.3 * (1 - disc) + 0.1])
    return caffe_input(torch.stack([gradient, red_disc]))


@pytest.fixture(scope="module")
def model() -> BNInception:
    torch.manual_seed(0)
    return bn_inception().eval()


@pytest.mark.parametrize("size", [224, 160, 112])
def test_feature_shape(model: BNInception, size: int) -> None:
    with torch.no_grad():
        out = model(two_frames(size))
    assert out.shape == (2, 1024)
    assert torch.isfinite(out).all()


def test_features_map_is_7x7_at_224(model: BNInception) -> None:
    with torch.no_grad():
        assert model.features(two_frames()).shape == (2, 1024, 7, 7)


def test_random_init_is_seeded_and_sane(model: BNInception) -> None:
    x = two_frames()
    torch.manual_seed(0)
    again = bn_inception().eval()
    torch.manual_seed(1)
    other = bn_inception().eval()
    with torch.no_grad():
        out, out_again, out_other = model(x), again(x), other(x)
    assert torch.equal(out, out_again)
    assert not torch.allclose(out, out_other)
    # Stored as float16: far from its 65504 limit, and not vanishing either.
    assert 0.01 < out.abs().max() < 1000
    assert torch.isfinite(out.half()).all()


def test_different_images_give_different_features(model: BNInception) -> None:
    with torch.no_grad():
        a, b = model(two_frames())
    assert F.cosine_similarity(a, b, dim=0) < 0.99


def test_logits_need_a_head(model: BNInception) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        model.logits(two_frames())
    torch.manual_seed(0)
    with torch.no_grad():
        assert bn_inception(num_classes=7).eval().logits(two_frames()).shape == (2, 7)


@pytest.mark.parametrize("bn_as_row", [False, True])
def test_caffe_weights_convert_and_match_the_caffe_graph(bn_as_row: bool) -> None:
    sd = fake_caffe_state_dict(bn_as_row=bn_as_row)
    converted = convert_caffe_state_dict(sd)
    net = BNInception(num_classes=1000).eval()
    net.load_state_dict(converted, strict=True)
    x = two_frames()
    with torch.no_grad():
        reference = caffe_forward(fake_caffe_state_dict(), x)
        torch.testing.assert_close(net(x), reference, rtol=1e-4, atol=1e-4)
        logits = F.linear(reference, sd["last_linear.weight"], sd["last_linear.bias"])
        torch.testing.assert_close(net.logits(x), logits, rtol=1e-4, atol=1e-4)
        # The builder drops the ImageNet head for feature extraction.
        features_only = bn_inception(weights=converted).eval()
        assert features_only.fc is None
        torch.testing.assert_close(features_only(x), reference, rtol=1e-4, atol=1e-4)


def test_builder_refuses_unconverted_caffe_keys() -> None:
    with pytest.raises(ValueError, match="convert_caffe_state_dict"):
        bn_inception(weights=fake_caffe_state_dict())


def test_missing_caffe_key_is_named() -> None:
    sd = fake_caffe_state_dict()
    del sd["inception_4d_pool_proj_bn.running_var"]
    with pytest.raises(ValueError, match=re.escape("inception_4d_pool_proj_bn.running_var")):
        convert_caffe_state_dict(sd)


def test_unexpected_caffe_key_is_named() -> None:
    sd = fake_caffe_state_dict()
    sd["inception_4e_1x1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=re.escape("inception_4e_1x1.weight")):
        convert_caffe_state_dict(sd)
