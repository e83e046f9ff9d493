"""The ensemble (`attack: ensemble, backend: native`): per image, the worst case over its member attacks.

Members run cheapest first (`EnsembleParams.ordered`), each on the images that the detector still
classifies correctly; an image counts as broken by a member when the detector misclassifies the member's
output and the perturbation is within the ensemble's eps (in its norm). Broken images return the breaking
member's output; the others the first in-budget output a member returned for them (else x unchanged), so
their robust accuracy is never above any member's on the same images (for members whose per-image
result does not depend on the other images in the batch or on the random state).
"""

from __future__ import annotations

import torch

from bench.attacks.params import EnsembleParams
from bench.attacks.registry import register_backend, run_attack
from bench.models.detector import Detector

TOLERANCE = 1e-5  # float slack on the budget


def within(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Per image: whether the perturbation is inside the eps ball of `norm`."""
    d = delta.flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    return size <= eps + TOLERANCE


@register_backend("ensemble", "native")
def ensemble(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: EnsembleParams) -> torch.Tensor:
    """The worst case over the members, per image (see the module doc)."""
    detector.eval()
    x = x.detach().to("cpu", torch.float32)
    y = y.detach().to("cpu", torch.int64)
    adv = x.clone()
    broken = detector.predict_proba(x).argmax(1) != y
    fallback = torch.zeros(len(x), dtype=torch.bool)
    dev = detector.device
    for _key, attack, backend, params in p.ordered():
        idx = torch.nonzero(~broken).flatten()
        if len(idx) == 0:
            break
        xa = run_attack(attack, backend, detector, x[idx].to(dev), y[idx].to(dev), params).cpu().float()
        ok = within(xa - x[idx], p.eps, p.norm)
        hit = ok & (detector.predict_proba(xa).argmax(1) != y[idx])
        first = ok & ~fallback[idx] & ~hit
        adv[idx[hit]] = xa[hit]
        adv[idx[first]] = xa[first]
        fallback[idx[ok]] = True
        broken[idx[hit]] = True
    return adv
