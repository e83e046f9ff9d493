"""The ensemble (`attack: ensemble, backend: native`): per image, the worst case over its member attacks.

Members run cheapest first (`EnsembleParams.ordered`), each on the images that the detector still
classifies correctly. A member's output is judged as it will be delivered: rounded to 8 bits and projected
onto the ensemble's eps ball (in its norm) on the 8-bit grid (`bench.attacks.delivery.deliver`), and scored by
the detector, which, made through the suite's storage, scores the stored image (`bench.attacks.storage`). An
image counts as broken by a member when the detector misclassifies that delivered image; broken images return
it, the others the first delivered output a member returned for them (else x unchanged). So on every image
the ensemble is broken wherever a member's output, as it ran inside the ensemble, was; and the craft cell's own
delivery leaves its output as it is (delivery is idempotent).
"""

from __future__ import annotations

import torch

from bench.attacks.delivery import deliver
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
    return worst_case(detector, x, y, p)


def worst_case(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: EnsembleParams,
               trace: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """The ensemble's output; `trace`, when given, receives per member (images it ran on, their delivered
    outputs as [0, 1] floats), so that a test can hold the worst case against every member as it ran."""
    detector.eval()
    x = x.detach().to("cpu", torch.float32)
    y = y.detach().to("cpu", torch.int64)
    adv = x.clone()
    broken = detector.predict_proba(x).argmax(1) != y
    fallback = torch.zeros(len(x), dtype=torch.bool)
    dev = detector.device
    for key, attack, backend, params in p.ordered():
        idx = torch.nonzero(~broken).flatten()
        if len(idx) == 0:
            break
        raw = run_attack(attack, backend, detector, x[idx].to(dev), y[idx].to(dev), params)
        xa = deliver(raw, x[idx], p.eps, p.norm).float() / 255.0
        if trace is not None:
            trace[key] = (idx, xa)
        ok = within(xa - x[idx], p.eps, p.norm)
        hit = ok & (detector.predict_proba(xa).argmax(1) != y[idx])
        first = ok & ~fallback[idx] & ~hit
        adv[idx[hit]] = xa[hit]
        adv[idx[first]] = xa[first]
        fallback[idx[ok]] = True
        broken[idx[hit]] = True
    return adv
