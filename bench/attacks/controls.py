"""Controls: 'attacks' that carry no adversarial information, scored beside the real ones.

A control answers "how much of an attack's effect would storage or random noise of the same size have had?":

- `storage`: the clean fakes unchanged (they then go through the suite's storage like any attack's examples);
- `noise`: uniform random sign noise +-eps at an L-inf budget, clipped to [0, 1];
- `noise_l2`: Gaussian noise scaled per image to an L2 norm: an L2 attack's budget, or the median L2, before
  storage, of the examples another attack perturbed on the same source (`noise_radius`; the craft cell fills
  `l2` in from that attack's stored norms). An image the attack returned unperturbed (L2 below `UNPERTURBED_L2`
  before storage: it gave up, or the detector already missed it; CW's tanh round trip alone moves an image by
  about 1e-5) does not size the noise; when the attack perturbed none, `l2` is 0 and the control returns the
  clean fakes (the storage-only control again: a no-op cell).

They are registered attacks of family "control" with a native backend, so crafting, storage, scoring and
export treat them as any attack; the plan adds them (`bench.suite.controls`), tables never rank them.
Noise is seeded per image by `seed` and the image's content, so it does not depend on batching.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from bench.attacks.control_params import NoiseL2Params, NoiseParams, StorageParams
from bench.attacks.registry import register_backend
from bench.models.detector import Detector

__all__ = ["NoiseL2Params", "NoiseParams", "StorageParams", "image_rng"]


# An L2 below this is float round-off, not a perturbation: under a quarter of one 8-bit level (1/255) in every pixel.
UNPERTURBED_L2 = 1e-3


def noise_radius(l2_before: np.ndarray) -> float:
    """The L2 norm of a noise control sized by another attack: the median L2, before storage, over the images that
    attack perturbed (L2 >= UNPERTURBED_L2); 0 when it perturbed none (the control then returns the clean fakes)."""
    moved = l2_before[l2_before >= UNPERTURBED_L2]
    return float(np.median(moved)) if len(moved) else 0.0


def image_rng(x: torch.Tensor, seed: int) -> np.random.Generator:
    """A generator seeded by `seed` and the image's bytes (float32, CPU)."""
    return np.random.default_rng([seed, zlib.crc32(x.detach().cpu().float().numpy().tobytes())])


@register_backend("storage", "native")
def storage_only(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: StorageParams) -> torch.Tensor:
    return x.detach().cpu().float().clone()


@register_backend("noise", "native")
def sign_noise(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: NoiseParams) -> torch.Tensor:
    out = []
    for xi in x.detach().cpu().float():
        s = image_rng(xi, p.seed).integers(0, 2, size=tuple(xi.shape)).astype(np.float32) * 2 - 1
        out.append((xi + p.eps * torch.from_numpy(s)).clamp(0, 1))
    return torch.stack(out)


@register_backend("noise_l2", "native")
def gaussian_noise_l2(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: NoiseL2Params) -> torch.Tensor:
    if p.l2 is None:
        raise ValueError("noise_l2 needs its radius `l2` (the craft cell sets it from the attack `of`)")
    out = []
    for xi in x.detach().cpu().float():
        g = torch.from_numpy(image_rng(xi, p.seed).standard_normal(size=tuple(xi.shape)).astype(np.float32))
        out.append((xi + g * (p.l2 / float(g.norm().clamp_min(1e-12)))).clamp(0, 1))
    return torch.stack(out)
