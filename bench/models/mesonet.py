"""MesoNet (Afchar et al. 2018): Meso-4 and MesoInception-4, compact face-forgery detectors.

Written from the paper's description (four convolution blocks with batch norm and max pooling, then a
16-unit dense layer with dropout); the head outputs 2 logits (fake, real) instead of one sigmoid, and
pooling uses ceil mode so that any input size from 16 px up works (the paper used 256 px).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.errors import BenchError


def _pooled_size(size: int, pools: tuple[int, ...]) -> int:
    for p in pools:
        size = -(-size // p)  # ceil division, as MaxPool2d(ceil_mode=True)
    return size


def _conv_block(cin: int, cout: int, k: int, pool: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(), nn.BatchNorm2d(cout),
                         nn.MaxPool2d(pool, ceil_mode=True))


def _head(features: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(features, 16), nn.LeakyReLU(0.1),
                         nn.Dropout(0.5), nn.Linear(16, num_classes))


class Meso4(nn.Module):
    """Conv 8@3x3, 8@5x5, 16@5x5, 16@5x5 (each ReLU, batch norm, max pool 2, 2, 2, 4), dense 16, dense 2."""

    def __init__(self, input_size: int = 256, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv_block(3, 8, 3, 2), _conv_block(8, 8, 5, 2), _conv_block(8, 16, 5, 2),
                                      _conv_block(16, 16, 5, 4))
        side = _pooled_size(input_size, (2, 2, 2, 4))
        self.classifier = _head(16 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class InceptionBlock(nn.Module):
    """MesoInception's module: 1x1; 1x1 then 3x3; 1x1 then 3x3 dilated 2; 1x1 then 3x3 dilated 3;
    concatenated, ReLU, batch norm, max pool 2."""

    def __init__(self, cin: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, a, 1)
        self.b2 = nn.Sequential(nn.Conv2d(cin, b, 1), nn.ReLU(), nn.Conv2d(b, b, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(cin, c, 1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=2, dilation=2))
        self.b4 = nn.Sequential(nn.Conv2d(cin, d, 1), nn.ReLU(), nn.Conv2d(d, d, 3, padding=3, dilation=3))
        self.out = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(a + b + c + d), nn.MaxPool2d(2, ceil_mode=True))
        self.channels = a + b + c + d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1))


class MesoInception4(nn.Module):
    """Inception(1, 4, 4, 2), Inception(2, 4, 4, 2), conv 16@5x5 (pool 2), conv 16@5x5 (pool 4), dense 16, 2."""

    def __init__(self, input_size: int = 256, num_classes: int = 2) -> None:
        super().__init__()
        i1 = InceptionBlock(3, 1, 4, 4, 2)
        i2 = InceptionBlock(i1.channels, 2, 4, 4, 2)
        self.features = nn.Sequential(i1, i2, _conv_block(i2.channels, 16, 5, 2), _conv_block(16, 16, 5, 4))
        side = _pooled_size(input_size, (2, 2, 2, 4))
        self.classifier = _head(16 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _no_weights(name: str) -> None:
    raise BenchError(f"models.{name}.pretrained", "MesoNet weights are not shipped: train it, or load your "
                     "own with `checkpoint:` (a state_dict of this architecture)")


def meso4(num_classes: int = 2, pretrained: bool = False, input_size: int = 256) -> nn.Module:
    """Meso-4 for square `input_size` images."""
    if pretrained:
        _no_weights("meso4")
    return Meso4(input_size, num_classes)


def meso_inception4(num_classes: int = 2, pretrained: bool = False, input_size: int = 256) -> nn.Module:
    """MesoInception-4 for square `input_size` images."""
    if pretrained:
        _no_weights("meso_inception4")
    return MesoInception4(input_size, num_classes)
