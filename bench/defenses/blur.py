"""Blur augmentation (paper section V): about 40 % of training images get a Gaussian blur.

The paper blurred with sigma drawn uniformly from [3, 5] px on its 368 x 300 images, to train the
classifier the DIP defense uses (DIP reconstructions are slightly soft). A blur in pixels scales with
resolution, so the default range here scales linearly with image size:

    sigma_range = [3, 5] * s / s_ref,   s = sqrt(H W),   s_ref = sqrt(368 * 300) = 332.3

(the geometric mean of the sides; for square images s is the side). At 64 x 64 that is [0.58, 0.96] px,
at 224 x 224 [2.02, 3.37] px. Give `sigma=(lo, hi)` to set the range in pixels directly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from bench.defenses.base import TrainingDefense
from bench.defenses.builtin_params import check_blur

PAPER_SIGMA = (3.0, 5.0)
PAPER_IMAGE_HW = (368, 300)
PAPER_REFERENCE_SIZE = math.sqrt(PAPER_IMAGE_HW[0] * PAPER_IMAGE_HW[1])  # 332.3 px


def scaled_sigma_range(height: int, width: int, reference_size: float = PAPER_REFERENCE_SIZE) -> tuple[float, float]:
    """The paper's sigma range [3, 5] px, scaled from `reference_size` to sqrt(height * width)."""
    s = math.sqrt(height * width) / reference_size
    return PAPER_SIGMA[0] * s, PAPER_SIGMA[1] * s


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels, one row per sigma, of length 2 radius + 1 (sigma <= 0: a delta)."""
    t = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    s = sigma.clamp_min(1e-6).unsqueeze(1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    delta = (t == 0).to(sigma.dtype).expand_as(k)
    return torch.where((sigma > 0).unsqueeze(1), k, delta)


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, truncate: float = 3.0) -> torch.Tensor:
    """Gaussian blur of a batch N x C x H x W, separable, with replicate padding.

    `sigma` is one value for the batch or one per image (shape N); 0 leaves an image unchanged. The
    kernel is truncated at `truncate` sigma (the largest sigma of the batch sets the kernel length).
    Differentiable in `x`.
    """
    if x.ndim != 4:
        raise ValueError(f"expected N x C x H x W, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    sig = sig.expand(n) if sig.ndim == 0 else sig
    if sig.shape != (n,):
        raise ValueError(f"sigma must be a scalar or have shape ({n},), got {tuple(sig.shape)}")
    smax = float(sig.max()) if n else 0.0
    if smax <= 0:
        return x.clone()
    radius = max(1, math.ceil(truncate * smax))
    k = gaussian_kernels(sig, radius).repeat_interleave(c, dim=0)  # (N C) x K
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return y.reshape(n, c, h, w)


class BlurAugmentation(TrainingDefense):
    """Blurs each training image with probability `fraction` (paper: about 40 %), sigma ~ U[lo, hi].

    `sigma=None` scales the paper's [3, 5] px from `reference_size` (the paper's sqrt(368 * 300)) to
    the batch's image size (see the module docstring). Every draw comes from the generator passed to
    `augment`, two uniforms per image whether it is blurred or not, so the result depends only on
    the generator's state.
    """

    name = "blur"

    def __init__(
        self,
        fraction: float = 0.4,
        sigma: tuple[float, float] | list[float] | None = None,
        reference_size: float = PAPER_REFERENCE_SIZE,
    ) -> None:
        fraction, sigma, reference_size = check_blur(fraction, sigma, reference_size, self.name)
        self.fraction = float(fraction)
        self.sigma = sigma
        self.reference_size = float(reference_size)

    def sigma_range(self, height: int, width: int) -> tuple[float, float]:
        """The sigma range in pixels used for images of this size."""
        if self.sigma is not None:
            return self.sigma
        return scaled_sigma_range(height, width, self.reference_size)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(which images are blurred: bool N, their sigma: float N, 0 where not blurred)."""
        chosen = torch.rand(n, generator=generator) < self.fraction
        lo, hi = self.sigma_range(height, width)
        sig = lo + (hi - lo) * torch.rand(n, generator=generator)
        return chosen, torch.where(chosen, sig, torch.zeros_like(sig))

    def augment(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen, sig = self.draw(x.shape[0], x.shape[2], x.shape[3], generator)
        if not bool(chosen.any()):
            return x
        out = x.clone()
        out[chosen] = gaussian_blur(x[chosen], sig[chosen].to(x.dtype)).clamp_(0.0, 1.0)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "fraction": self.fraction,
            "sigma": list(self.sigma) if self.sigma else None,
            "reference_size": self.reference_size,
        }

    def __repr__(self) -> str:
        return (
            f"BlurAugmentation(fraction={self.fraction:g}, sigma={self.sigma}, reference_size={self.reference_size:g})"
        )
