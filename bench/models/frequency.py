"""Frequency-domain detector (Frank et al. 2020): a classifier on the log-magnitude 2-D DCT of each channel.

The DCT is a matrix product with a fixed orthonormal DCT-II basis, so input gradients flow through it and
every attack applies unchanged. Each frequency is standardised with statistics that are buffers (saved
in the checkpoint): while training they accumulate the mean and variance of the log spectrum over every
training batch seen (a cumulative average, so after one epoch they are the training set's), in evaluation
they are fixed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import BenchError


def dct_basis(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n x n): D @ v is the DCT of the column vector v, D @ D.T = I."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


class LogDCT(nn.Module):
    """Per channel, log(|D X D^T| + eps), standardised per frequency with running statistics (buffers)."""

    def __init__(self, size: int, channels: int = 3, eps: float = 1e-3) -> None:
        super().__init__()
        self.size = size
        self.eps = eps
        self.register_buffer("basis", dct_basis(size))
        self.register_buffer("freq_mean", torch.zeros(channels, size, size))
        self.register_buffer("freq_sq_mean", torch.ones(channels, size, size))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """The log-magnitude DCT of each channel of x (N x C x size x size)."""
        if x.shape[-2:] != (self.size, self.size):
            raise BenchError("model.input_size", f"the DCT layer was built for {self.size} px, got "
                             f"{tuple(x.shape[-2:])}")
        coeff = self.basis @ x @ self.basis.T
        return torch.log(coeff.abs() + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spectrum(x)
        if self.training:
            with torch.no_grad():  # cumulative average over every training batch
                seen = self.batches_seen.item()
                w = 1.0 / (seen + 1)
                self.freq_mean.mul_(1 - w).add_(s.mean(0), alpha=w)
                self.freq_sq_mean.mul_(1 - w).add_(s.pow(2).mean(0), alpha=w)
                self.batches_seen.add_(1)
        var = (self.freq_sq_mean - self.freq_mean.pow(2)).clamp_min(1e-6)
        return (s - self.freq_mean) / var.sqrt()


class DCTDetector(nn.Module):
    """LogDCT, then a classifier that keeps where each frequency sits (no global pooling). With `width` > 0:
    two 3x3 convolutions and average pooling to a `bands` x `bands` grid of frequency bands; with width 0
    the standardised spectrum itself. Then dropout and a linear head."""

    def __init__(self, input_size: int, num_classes: int = 2, width: int = 8, bands: int = 16) -> None:
        super().__init__()
        self.dct = LogDCT(input_size)
        grid = min(bands, input_size)
        if width:
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(grid),
                nn.Flatten(),
            )
            n_features = width * grid * grid
        else:
            self.features = nn.Flatten()
            n_features = 3 * input_size * input_size
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(n_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.dct(x)))


def dct_detector(num_classes: int = 2, pretrained: bool = False, input_size: int = 64) -> nn.Module:
    """The DCT detector for square `input_size` images (the DCT basis is sized to the input)."""
    if pretrained:
        raise BenchError("models.dct.pretrained", "the DCT detector has no published weights: train it "
                         "(a few minutes) or load yours with `checkpoint:`")
    return DCTDetector(input_size, num_classes)
