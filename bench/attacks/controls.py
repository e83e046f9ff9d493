"""Controls: 'attacks' that carry no adversarial information, scored beside the real ones.

A control answers "how much of an attack's effect would storage or random noise of the same size have had?":

- `storage`: the clean fakes unchanged (they then go through the suite's storage like any attack's examples);
- `noise`: uniform random sign noise +-eps at an L-inf budget, clipped to [0, 1];
- `noise_l2`: Gaussian noise scaled per image to an L2 norm (the median L2, before storage, of another
  attack's examples on the same source; the craft cell fills `l2` in from that attack's stored norms).

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
