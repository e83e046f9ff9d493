"""Native minimum-norm L2 attacks (`backend: native`), batched: FMN and DDN.

Both search the smallest L2 perturbation that makes the detector misclassify, by steering the norm of
the perturbation (an L2 ball's radius) up while the iterate is not adversarial and down while it is, and
keep per image the smallest adversarial perturbation seen. Images never made adversarial come back
unperturbed (as CW-L2 does). Each iteration is one forward and one backward pass per image; one more
forward pass checks the last iterate (the toolkits never look at it).

- FMN, Pintor et al. (2021), "Fast minimum-norm adversarial attacks through adaptive norm constraints":
  a step of size alpha (cosine-annealed from `max_stepsize` to `min_stepsize`) along the normalised
  gradient of the logit margin, then projection onto the ball of radius epsilon, where epsilon shrinks
  to min(epsilon (1 - gamma), best norm so far) while adversarial, grows by (1 + gamma) while not (once
  an adversarial was found), and before that jumps to the linearised distance to the boundary,
  ||delta|| + |margin| / ||grad||; gamma is cosine-annealed from `gamma` to 0.001.
- DDN, Rony et al. (2019), "Decoupling direction and norm for efficient gradient-based L2 adversarial
  attacks and defenses": a step of size alpha (cosine-annealed from 1 to 0.01) along the normalised
  cross-entropy gradient, then the perturbation rescaled to norm epsilon, which is multiplied by
  (1 - gamma) after an adversarial iterate and by (1 + gamma) after one that is not. (The paper's
  8-bit quantisation of each iterate is left out, as Foolbox does.)
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from bench.attacks.params import DDNParams, FMNParams
from bench.attacks.registry import register_backend
from bench.models.detector import Detector

CHUNK = 256
TINY = 1e-12


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _view(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def _cosine(start: float, end: float, i: int, steps: int) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * i / steps)) / 2


class _Best:
    """The smallest adversarial perturbation seen per image."""

    def __init__(self, x: torch.Tensor) -> None:
        self.l2 = torch.full((len(x),), math.inf, device=x.device)
        self.delta = torch.zeros_like(x)
        self.found = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def update(self, delta: torch.Tensor, adversarial: torch.Tensor) -> None:
        l2 = _norm(delta)
        better = adversarial & (l2 < self.l2)
        self.l2 = torch.where(better, l2, self.l2)
        self.delta[better] = delta[better]
        self.found |= adversarial

    @torch.no_grad()
    def check_last(self, detector: Detector, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor) -> None:
        self.update(delta, detector(x + delta).argmax(1) != y)


def _per_chunk(fn, detector: Detector, x: torch.Tensor, y: torch.Tensor, p) -> torch.Tensor:
    detector.eval()
    dev = detector.device
    x, y = x.to(dev, torch.float32), y.to(dev, torch.int64)
    out = [fn(detector, x[i : i + CHUNK], y[i : i + CHUNK], p).detach().cpu() for i in range(0, len(x), CHUNK)]
    return torch.cat(out) if out else x.cpu()


def _fmn_batch(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FMNParams) -> torch.Tensor:
    delta = torch.zeros_like(x)
    epsilon = torch.full((len(x),), math.inf, device=x.device)
    worst = _norm(torch.maximum(x, 1 - x))  # the farthest point of the box
    best = _Best(x)
    for i in range(p.steps):
        alpha = _cosine(p.max_stepsize, p.min_stepsize, i, p.steps)
        gamma = _cosine(p.gamma, 0.001, i, p.steps)
        xa = (x + delta).requires_grad_(True)
        logits = detector(xa)
        z_true = logits.gather(1, y[:, None]).squeeze(1)
        z_other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        margin = z_true - z_other
        (g,) = torch.autograd.grad(-margin.sum(), xa)  # toward misclassification
        with torch.no_grad():
            adversarial = logits.argmax(1) != y
            best.update(delta, adversarial)
            g_norm = _norm(g).clamp_min(TINY)
            to_boundary = margin.abs() / g_norm
            epsilon = torch.where(
                adversarial,
                torch.minimum(epsilon * (1 - gamma), best.l2),
                torch.where(best.found, epsilon * (1 + gamma), _norm(delta) + to_boundary),
            )
            epsilon = torch.minimum(epsilon, worst)
            delta = delta + alpha * g / _view(g_norm)
            delta = delta * _view(torch.clamp(epsilon / _norm(delta).clamp_min(TINY), max=1.0))
            delta = (x + delta).clamp(0.0, 1.0) - x
    best.check_last(detector, x, delta, y)
    return x + best.delta


def _ddn_batch(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: DDNParams) -> torch.Tensor:
    delta = torch.zeros_like(x)
    epsilon = torch.full((len(x),), p.init_epsilon, device=x.device)
    worst = _norm(torch.maximum(x, 1 - x))
    best = _Best(x)
    for i in range(p.steps):
        alpha = _cosine(1.0, 0.01, i, p.steps)
        xa = (x + delta).requires_grad_(True)
        logits = detector(xa)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xa)
        with torch.no_grad():
            adversarial = logits.argmax(1) != y
            best.update(delta, adversarial)
            zero = _norm(g) == 0  # a flat loss: a random direction instead (as Foolbox does)
            if bool(zero.any()):
                g[zero] = torch.randn_like(g[zero])
            delta = delta + alpha * g / _view(_norm(g).clamp_min(TINY))
            epsilon = torch.minimum(epsilon * torch.where(adversarial, 1 - p.gamma, 1 + p.gamma), worst)
            delta = delta * _view(epsilon / _norm(delta).clamp_min(TINY))
            delta = (x + delta).clamp(0.0, 1.0) - x
    best.check_last(detector, x, delta, y)
    return x + best.delta


@register_backend("fmn", "native")
def fmn(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FMNParams) -> torch.Tensor:
    """FMN-L2, batched (see the module doc)."""
    return _per_chunk(_fmn_batch, detector, x, y, p)


@register_backend("ddn", "native")
def ddn(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: DDNParams) -> torch.Tensor:
    """DDN-L2, batched (see the module doc)."""
    return _per_chunk(_ddn_batch, detector, x, y, p)
