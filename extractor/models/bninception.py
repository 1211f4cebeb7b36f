"""BN-Inception (Ioffe & Szegedy 2015), the encoder of the paper's per-shot features.

Layer for layer the Caffe model that TSN and Cadene's ``pretrainedmodels`` ship
(``bn_inception-52deb4733.pth``), so those ImageNet weights load through
:func:`storyline.extractor.models.bninception_import.convert_caffe_state_dict`.
Declared the torchvision way (cf. ``torchvision/models/googlenet.py``): building blocks,
the module, and a builder.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FEATURE_DIM",
    "INCEPTION_SPECS",
    "BNInception",
    "BasicConv2d",
    "Inception",
    "InceptionSpec",
    "bn_inception",
]

FEATURE_DIM = 1024  # width of the pooled feature the extractor stores


class BasicConv2d(nn.Module):
    """Conv + BN + ReLU, the unit every layer of the network is made of.

    The conv keeps its bias (redundant before BN) because the Caffe weights have one;
    dropping it would make importing them lossy.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionSpec(NamedTuple):
    """Branch widths of one Inception block; a width of 0 means that branch is absent."""

    in_channels: int
    ch1x1: int  # 1x1 branch (0 in the stride-2 blocks)
    ch3x3red: int  # 1x1 reduction before the single 3x3
    ch3x3: int
    dbl3x3red: int  # 1x1 reduction before the two stacked 3x3s
    dbl3x3: int
    pool_proj: int  # 1x1 projection after the pool (0: the pool passes through)
    stride: int = 1
    pool: Literal["avg", "max"] = "avg"


# Widths of the Caffe model (Cadene's pretrainedmodels / TSN), by Caffe block name.
INCEPTION_SPECS: dict[str, InceptionSpec] = {
    #                     in  1x1  3r   3x3 dr   d3x3 pool
    "3a": InceptionSpec(192, 64, 64, 64, 64, 96, 32),
    "3b": InceptionSpec(256, 64, 64, 96, 64, 96, 64),
    "3c": InceptionSpec(320, 0, 128, 160, 64, 96, 0, stride=2, pool="max"),
    "4a": InceptionSpec(576, 224, 64, 96, 96, 128, 128),
    "4b": InceptionSpec(576, 192, 96, 128, 96, 128, 128),
    "4c": InceptionSpec(576, 160, 128, 160, 128, 160, 128),
    "4d": InceptionSpec(608, 96, 128, 192, 160, 192, 128),
    "4e": InceptionSpec(608, 0, 128, 192, 192, 256, 0, stride=2, pool="max"),
    "5a": InceptionSpec(1056, 352, 192, 320, 160, 224, 128),
    "5b": InceptionSpec(1024, 352, 192, 320, 192, 224, 128, pool="max"),
}


class Inception(nn.Module):
    """One BN-Inception block: 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | pool(->1x1), concatenated.

    The stride-2 blocks (3c, 4e) drop the 1x1 branch and pass a 3x3/2 max-pool through
    unprojected; 5b pools with max instead of avg. Pools follow Caffe (ceil mode, padding
    counted in averages) so the imported weights see the inputs they were trained on.
    """

    def __init__(self, spec: InceptionSpec) -> None:
        super().__init__()
        if spec.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {spec.stride}")
        if (spec.stride == 2) != (spec.pool_proj == 0):
            raise ValueError("only stride-2 blocks pass the pool through without projection")
        self.stride = spec.stride
        self.branch1x1 = BasicConv2d(spec.in_channels, spec.ch1x1, 1) if spec.ch1x1 else None
        self.branch3x3 = nn.Sequential(
            BasicConv2d(spec.in_channels, spec.ch3x3red, 1),
            BasicConv2d(spec.ch3x3red, spec.ch3x3, 3, stride=spec.stride),
        )
        self.branch3x3dbl = nn.Sequential(
            BasicConv2d(spec.in_channels, spec.dbl3x3red, 1),
            BasicConv2d(spec.dbl3x3red, spec.dbl3x3, 3),
            BasicConv2d(spec.dbl3x3, spec.dbl3x3, 3, stride=spec.stride),
        )
        pool: nn.Module
        if spec.stride == 2:
            pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        elif spec.pool == "max":
            pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        else:
            pool = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        self.branch_pool = (
            nn.Sequential(pool, BasicConv2d(spec.in_channels, spec.pool_proj, 1))
            if spec.pool_proj
            else pool
        )
        self.out_channels = (
            spec.ch1x1 + spec.ch3x3 + spec.dbl3x3 + (spec.pool_proj or spec.in_channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = [] if self.branch1x1 is None else [self.branch1x1(x)]
        branches += [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(self._pad_odd(x))]
        return torch.cat(branches, 1)

    def _pad_odd(self, x: Tensor) -> Tensor:
        """Let the stride-2 pool match the stride-2 convs on odd sizes (e.g. 112 input).

        A 3x3/2 ceil-mode pool yields (n-1)/2 rows for odd n, the padded convs (n+1)/2;
        one -inf row/column on the far side adds the missing window. Even sizes (all of
        a 224 input) are untouched, so the Caffe model's outputs are unchanged there.
        """
        if self.stride == 1 or (x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0):
            return x
        return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf"))


class BNInception(nn.Module):
    """BN-Inception trunk; ``forward`` gives the 1024-d global-average-pooled feature.

    ``num_classes > 0`` adds a linear head ``fc`` used by :meth:`logits` (training the
    encoder from trailers, or the 1000 ImageNet classes of the Caffe weights).
    """

    def __init__(self, *, num_classes: int = 0) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.conv1 = BasicConv2d(3, 64, 7, stride=2)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = BasicConv2d(64, 64, 1)
        self.conv2 = BasicConv2d(64, 192, 3)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(INCEPTION_SPECS["3a"])
        self.inception3b = Inception(INCEPTION_SPECS["3b"])
        self.inception3c = Inception(INCEPTION_SPECS["3c"])
        self.inception4a = Inception(INCEPTION_SPECS["4a"])
        self.inception4b = Inception(INCEPTION_SPECS["4b"])
        self.inception4c = Inception(INCEPTION_SPECS["4c"])
        self.inception4d = Inception(INCEPTION_SPECS["4d"])
        self.inception4e = Inception(INCEPTION_SPECS["4e"])
        self.inception5a = Inception(INCEPTION_SPECS["5a"])
        self.inception5b = Inception(INCEPTION_SPECS["5b"])
        # Adaptive, unlike Caffe's fixed 7x7 pool: identical at 224, and other sizes work.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_classes = num_classes
        self.fc = nn.Linear(FEATURE_DIM, num_classes) if num_classes else None
        self._init_weights()

    def _init_weights(self) -> None:
        """Random init from torch's global RNG, so ``torch.manual_seed`` fixes the network.

        Measured on a 224 input (Caffe value range), eval mode. Kaiming fan_out let the
        activations grow to ~1e5, past float16. Kaiming fan_in keeps them in range, but
        every image's pooled feature then pointed the same way (cosine ~0.99 between
        unrelated images): post-ReLU inputs share a positive mean that each filter turns
        into the same offset for every image. Zero-mean filters on those inputs cancel it
        (cosine ~0.8, features |f| < ~50); conv1 reads the mean-subtracted image and keeps
        its DC response, so flat colours stay apart.
        """
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if name != "conv1.conv":
                    with torch.no_grad():
                        m.weight.sub_(m.weight.mean(dim=(1, 2, 3), keepdim=True))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """The last feature map, N x 1024 x 7 x 7 for a 224 x 224 input."""
        # N x 3 x 224 x 224
        x = self.conv1(x)
        # N x 64 x 112 x 112
        x = self.pool1(x)
        # N x 64 x 56 x 56
        x = self.conv2_reduce(x)
        # N x 64 x 56 x 56
        x = self.conv2(x)
        # N x 192 x 56 x 56
        x = self.pool2(x)
        # N x 192 x 28 x 28
        x = self.inception3a(x)
        # N x 256 x 28 x 28
        x = self.inception3b(x)
        # N x 320 x 28 x 28
        x = self.inception3c(x)
        # N x 576 x 14 x 14
        x = self.inception4a(x)
        # N x 576 x 14 x 14
        x = self.inception4b(x)
        # N x 576 x 14 x 14
        x = self.inception4c(x)
        # N x 608 x 14 x 14
        x = self.inception4d(x)
        # N x 608 x 14 x 14
        x = self.inception4e(x)
        # N x 1056 x 7 x 7
        x = self.inception5a(x)
        # N x 1024 x 7 x 7
        x = self.inception5b(x)
        # N x 1024 x 7 x 7
        return x

    def forward(self, x: Tensor) -> Tensor:
        """The per-frame feature, N x 1024: what the extractor stores."""
        x = self.features(x)
        # N x 1024 x 7 x 7
        x = self.avgpool(x)
        # N x 1024 x 1 x 1
        return torch.flatten(x, 1)

    def logits(self, x: Tensor) -> Tensor:
        """Class scores, N x num_classes, from the head ``fc``."""
        if self.fc is None:
            raise ValueError("this BNInception has no head: build it with num_classes > 0")
        return self.fc(self.forward(x))


def bn_inception(*, weights: dict[str, Tensor] | None = None, num_classes: int = 0) -> BNInception:
    """Build BN-Inception, randomly initialised (seed torch first) or from ``weights``.

    ``weights`` is a state dict with this module's keys; for the Caffe/TSN ImageNet file,
    pass it through ``bninception_import.convert_caffe_state_dict`` first, and feed the
    model that file's preprocessing (``CAFFE_BNINCEPTION_PREPROCESSING``). A head in
    ``weights`` is dropped when ``num_classes`` is 0 (feature extraction); otherwise it
    must have ``num_classes`` outputs. Loading is strict, so no layer is silently left
    random.
    """
    model = BNInception(num_classes=num_classes)
    if weights is None:
        return model
    if "conv1_7x7_s2.weight" in weights:
        raise ValueError(
            "weights have the Caffe file's key names: pass them through "
            "storyline.extractor.models.bninception_import.convert_caffe_state_dict first"
        )
    if num_classes == 0:
        weights = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    model.load_state_dict(weights, strict=True)
    return model
