"""Expectation over transformation (EOT, Athalye et al. 2018): the gradient every native gradient attack uses.

A randomized defense (random noise, random resizing, DIP with another seed) gives a different output, and a
different gradient, on every call. An attack that follows one sample's gradient chases noise; EOT follows the
mean over `eot` samples instead: each sample is one forward and backward pass through the detector, and each
pass draws fresh randomness from the defense. A randomized defense therefore draws from a generator that
advances on every call (seeded once, so a run is deterministic); nothing here reseeds it.

Non-differentiable steps are not this module's business: a `PreprocessorDefense` declared
`differentiable = False` already returns the straight-through (BPDA) estimate `x + (f(x) - x).detach()`,
so the gradients averaged here are BPDA gradients for such a defense.

`loss_and_grad` (cross-entropy) serves FGSM, PGD and APGD; `expected_grad` any loss (CW-L2's objective).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from bench.models.detector import Detector

ObjectiveFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def expected_grad(objective: ObjectiveFn, z: torch.Tensor,
                  eot: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over `eot` calls of `objective(z_) -> (per-image loss, logits)` and of the gradient of the summed loss
    with respect to `z` (z_ a fresh leaf copy of z). Returns (mean loss, mean gradient, mean logits), detached."""
    if eot < 1:
        raise ValueError(f"eot must be >= 1, got {eot}")
    loss_sum = grad_sum = logits_sum = None
    for _ in range(eot):
        zg = z.detach().requires_grad_(True)
        loss, logits = objective(zg)
        (g,) = torch.autograd.grad(loss.sum(), zg)
        loss, logits = loss.detach(), logits.detach()
        if grad_sum is None:
            loss_sum, grad_sum, logits_sum = loss, g, logits
        else:
            loss_sum, grad_sum, logits_sum = loss_sum + loss, grad_sum + g, logits_sum + logits
    assert loss_sum is not None and grad_sum is not None and logits_sum is not None
    if eot == 1:
        return loss_sum, grad_sum, logits_sum
    return loss_sum / eot, grad_sum / eot, logits_sum / eot


def loss_and_grad(detector: Detector, x: torch.Tensor, y: torch.Tensor,
                  eot: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-image cross-entropy J(x, y), its gradient with respect to the [0, 1] input, logits), each the mean
    over `eot` passes through the detector (one pass: the plain gradient)."""

    def objective(xg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = detector(xg)
        return F.cross_entropy(logits, y, reduction="none"), logits

    return expected_grad(objective, x, eot)
