"""Native APGD-CE (`attack: apgd, backend: native`): Auto-PGD on the cross-entropy loss, batched.

Croce and Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks". AutoAttack pairs APGD-CE with APGD-DLR; the DLR loss divides by the gap between
the largest and the third-largest logit, which a two-class detector does not have, so only CE is used.

Per image, in an L-inf or L2 ball of radius eps intersected with the [0, 1] box:

- start at a random point of the ball (or at x), step size eta = `step_size` x eps;
- step along sign(gradient) (L-inf) or the unit gradient (L2), project, then take the momentum
  combination x_{k+1} = P(x_k + 0.75 (z_{k+1} - x_k) + 0.25 (x_k - x_{k-1})) (the first step has none);
- checkpoints at iterations ceil(w_j * steps), w_0 = 0, w_1 = 0.22, w_{j+1} = w_j + max(w_j - w_{j-1} - 0.03,
  0.06): eta is halved, and the iterate moved back to the highest-loss point, where the loss rose in fewer
  than 75 % of the iterations since the last checkpoint, or where neither eta nor the best loss changed
  since then;
- every iterate that is misclassified is an adversarial: the first one found is returned; images never
  broken return their highest-loss point (in the ball; useful for transfer). Restarts rerun the attack on
  the images not yet broken.
"""

from __future__ import annotations

import math

import torch

from bench.attacks.eot import loss_and_grad
from bench.attacks.params import APGDParams
from bench.attacks.registry import register_backend
from bench.attacks.restarts import with_restarts
from bench.models.detector import Detector

MOMENTUM = 0.75
RHO = 0.75
CHUNK = 256


def checkpoints(steps: int) -> list[int]:
    """The iterations at which the step size may be halved (the paper's schedule)."""
    w = [0.0, 0.22]
    while w[-1] + max(w[-1] - w[-2] - 0.03, 0.06) <= 1.0:
        w.append(w[-1] + max(w[-1] - w[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(v * steps, 6)) for v in w})  # round: 0.57 * 100 is 57.000000000000007


def _view(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def _project(xa: torch.Tensor, x0: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    d = xa - x0
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        d = d * _view(torch.clamp(eps / d.flatten(1).norm(dim=1).clamp_min(1e-12), max=1.0))
    return (x0 + d).clamp(0.0, 1.0)  # clipping to the box only shrinks the perturbation


def _direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return g.sign()
    return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12))


def _start(x0: torch.Tensor, p: APGDParams) -> torch.Tensor:
    if not p.random_start:
        return x0.clone()
    if p.norm == "linf":
        r = (2 * torch.rand_like(x0) - 1) * p.eps
    else:
        t = torch.randn_like(x0)
        r = t / _view(t.flatten(1).norm(dim=1).clamp_min(1e-12)) * p.eps
    return _project(x0 + r, x0, p.eps, p.norm)


def _loss_grad(detector: Detector, xa: torch.Tensor, y: torch.Tensor, eot: int = 1):
    """(loss, gradient, logits), each the mean over `eot` passes (`bench.attacks.eot`)."""
    return loss_and_grad(detector, xa, y, eot)


def _run(detector: Detector, x0: torch.Tensor, y: torch.Tensor, p: APGDParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One restart on a batch: (found, x_out) with x_out the first adversarial iterate or the best-loss point."""
    n = len(x0)
    marks = checkpoints(p.steps)
    xk = _start(x0, p)
    loss, g, logits = _loss_grad(detector, xk, y, p.eot)
    found = logits.argmax(1) != y
    x_found = xk.clone()
    best_loss, x_best, g_best = loss.clone(), xk.clone(), g.clone()
    eta = torch.full((n,), p.step_size * p.eps, device=x0.device)
    x_prev = xk.clone()
    rises = torch.zeros(n, device=x0.device)
    eta_mark, loss_mark, last_mark = eta.clone(), best_loss.clone(), 0
    for k in range(p.steps):
        if bool(found.all()):
            break
        z = _project(xk + _view(eta) * _direction(g, p.norm), x0, p.eps, p.norm)
        x_new = z if k == 0 else _project(xk + MOMENTUM * (z - xk) + (1 - MOMENTUM) * (xk - x_prev), x0, p.eps, p.norm)
        x_prev, xk = xk, x_new
        loss, g, logits = _loss_grad(detector, xk, y, p.eot)
        hit = (logits.argmax(1) != y) & ~found
        x_found[hit] = xk[hit]
        found |= hit
        up = loss > best_loss
        rises += up.float()
        best_loss = torch.where(up, loss, best_loss)
        x_best[up], g_best[up] = xk[up], g[up]
        if k + 1 in marks:
            stalled = rises < RHO * (k + 1 - last_mark)
            frozen = (eta == eta_mark) & (best_loss == loss_mark)
            halve = stalled | frozen
            eta = torch.where(halve, eta / 2, eta)
            xk[halve], g[halve], x_prev[halve] = x_best[halve], g_best[halve], x_best[halve]
            rises.zero_()
            eta_mark, loss_mark, last_mark = eta.clone(), best_loss.clone(), k + 1
    return found, torch.where(_view(found), x_found, x_best)


@register_backend("apgd", "native")
def apgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: APGDParams) -> torch.Tensor:
    """APGD-CE, batched; images the detector already misclassifies are returned as they are."""
    detector.eval()
    dev = detector.device
    x, y = x.to(dev, torch.float32), y.to(dev, torch.int64)
    out = []
    for i in range(0, len(x), CHUNK):
        xs, ys = x[i : i + CHUNK], y[i : i + CHUNK]
        with torch.no_grad():
            broken = detector(xs).argmax(1) != ys
        adv = with_restarts(xs, ys, broken, p.restarts, lambda xx, yy: _run(detector, xx, yy, p))
        out.append(adv.detach().cpu())
    return torch.cat(out) if out else x.cpu()
