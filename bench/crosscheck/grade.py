"""Grading implementations of one attack by strength, as AttackBench does (Cina et al., "AttackBench:
evaluating gradient-based attacks for adversarial examples").

Per image and implementation, the *distance* is the size (in the attack's norm) of the smallest
perturbation with which the implementation made the detector misclassify: 0 for an image misclassified
before any attack, infinity where it never succeeded. A minimum-norm attack gives it in one run; a budgeted
attack is run at each budget of a grid and the smallest successful perturbation is kept.

- **Security-evaluation curve**: robust accuracy against the budget, rho(eps) = share of images whose
  distance exceeds eps.
- **Best curve**: per image the smallest distance over all implementations run (the empirically optimal
  attack). D = its largest finite distance.
- **Optimality** of an implementation: 1 - (A - A*) / (A_worst - A*), where A is the area under its curve on
  [0, D], A* that of the best curve, and A_worst = clean accuracy x D (an implementation that breaks nothing).
  1 is the best implementation, 0 one that breaks nothing. Since the curves are step functions, the area is
  exact: A = mean over images of min(distance, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Grade:
    """One implementation's curve, optimality and total cost over every run that made its curve."""

    name: str
    optimality: float
    curve: list[tuple[float, float]] = field(default_factory=list)  # (budget, robust accuracy)
    forward_per_image: float = 0.0
    backward_per_image: float = 0.0
    seconds_per_image: float = 0.0
    runs: int = 1


def distances(x: torch.Tensor, x_adv: torch.Tensor, success: torch.Tensor, clean_wrong: torch.Tensor,
              norm: str) -> torch.Tensor:
    """Per image: the perturbation's size in `norm` where it succeeded, 0 where the clean image is already
    misclassified, infinity elsewhere (float64)."""
    d = (x_adv - x).flatten(1).double()
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    out = torch.where(success, size, torch.full_like(size, math.inf))
    return torch.where(clean_wrong, torch.zeros_like(out), out)


def area(dist: torch.Tensor, upper: float) -> float:
    """The area under the curve rho(eps) = mean(dist > eps) on [0, upper]: mean(min(dist, upper))."""
    return float(dist.clamp(max=upper).mean()) if len(dist) else 0.0


BUDGET_SLACK = 1e-6  # float32 images: a perturbation "at" the budget may exceed it in the 7th digit


def robust_accuracy(dist: torch.Tensor, eps: float) -> float:
    """The share of images whose distance exceeds eps (a point of the curve)."""
    return float((dist > eps + BUDGET_SLACK).double().mean()) if len(dist) else math.nan


def optimality(per_impl: dict[str, torch.Tensor]) -> tuple[dict[str, float], torch.Tensor, float]:
    """(optimality per implementation, the best distances, D) for distances of the same images."""
    best = torch.stack(list(per_impl.values())).amin(0)
    finite = best[torch.isfinite(best)]
    upper = float(finite.max()) if len(finite) else 0.0
    a_best = area(best, upper)
    a_worst = float((best > 0).double().mean()) * upper if len(best) else 0.0
    span = a_worst - a_best
    out = {}
    for name, d in per_impl.items():
        out[name] = 1.0 if span <= 1e-12 else 1.0 - (area(d, upper) - a_best) / span
    return out, best, upper


def curve_budgets(best: torch.Tensor, upper: float, budgets: list[float] | None, points: int = 8) -> list[float]:
    """The budgets a curve is tabulated at: the given ones, else `points` evenly spaced up to D."""
    if budgets:
        return sorted(budgets)
    if upper <= 0:
        return [0.0]
    return [upper * (i + 1) / points for i in range(points)]
