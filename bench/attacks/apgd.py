"""Native APGD-CE (`attack: apgd, backend: native`): Auto-PGD on the cross-entropy loss, batched.

Croce and Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", Algorithm 1. AutoAttack pairs APGD-CE with APGD-DLR; the DLR loss divides by the
gap between the largest and the third-largest logit, which a two-class detector does not have, so only CE
is used. For two classes the cross-entropy is a monotone function of the logit margin, so the highest-loss
point is the one with the largest margin.

Per image, in an L-inf or L2 ball of radius eps intersected with the [0, 1] box, on f = CE(detector(x), y):

- x^(0) is a random point of the ball (or x itself, `random_start: false`); the step size starts at
  eta = `step_size` x eps;
- x^(1) = P(x^(0) + eta s(grad f(x^(0)))), without momentum, s the sign (L-inf) or the unit vector (L2);
- x^(k+1) = P(x^(k) + alpha (z^(k+1) - x^(k)) + (1 - alpha) (x^(k) - x^(k-1))) with
  z^(k+1) = P(x^(k) + eta s(grad f(x^(k)))) and momentum alpha = `MOMENTUM` (0.75);
- x_max is the highest-loss point seen (f_max its loss), x^(0) included;
- at the checkpoints w_j = ceil(p_j N) (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
  N = `steps`), eta is halved and the iterate set to x_max where
  condition 1: the loss rose over the previous iterate in fewer than rho = `RHO` (0.75) of the steps since
  w_{j-1}, or condition 2: eta was not halved at w_{j-1} and f_max has not risen since w_{j-1};
- the attack returns x_max, not the first iterate that crosses the boundary.

Choices where the paper leaves room (the reference code differs on the first two; ART 1.20.1 on all three, see
`bench.attacks.toolkits.art_apgd`): a step taken from x_max after a halving compares its loss with f_max (the
algorithm sets x^(k+1) = x_max); condition 2 applies at w_1 too, against w_0 = 0; with `restarts` > 1 every
restart runs on every image the detector classifies correctly at the start and each image keeps the restart
with the highest loss. AutoAttack stops at the first adversarial iterate and restarts only the images no earlier
restart broke; we keep optimising because the score that counts is read after storage (8-bit rounding, JPEG),
which can undo a barely-adversarial example: the detector's output is the score the run reads, so the highest
loss is the best bet that the stored image stays adversarial. The cost is fixed: `steps` + 1 passes (forward and
backward, x `eot`) per image and restart.
"""

from __future__ import annotations

import math

import torch

from bench.attacks.eot import loss_and_grad
from bench.attacks.params import APGDParams
from bench.attacks.registry import register_backend
from bench.models.detector import Detector

MOMENTUM = 0.75  # alpha: weight of the new gradient step against the previous update
RHO = 0.75  # condition 1: the share of steps since the last checkpoint on which the loss must rise
FIRST_CHECKPOINT = 0.22  # p_1
GAP_SHRINK = 0.03  # each gap between checkpoints is the previous one less this ...
MIN_GAP = 0.06  # ... but at least this
CHUNK = 256


def checkpoint_fractions() -> list[float]:
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), up to 1."""
    p = [0.0, FIRST_CHECKPOINT]
    while (nxt := p[-1] + max(p[-1] - p[-2] - GAP_SHRINK, MIN_GAP)) <= 1.0:
        p.append(nxt)
    return p


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ceil(p_j * steps) at which the step size may be halved (w_0 = 0 included)."""
    return sorted({math.ceil(round(v * steps, 6)) for v in checkpoint_fractions()})  # round: 0.57 * 100 = 57.0...01


class StepSizeRule:
    """Algorithm 1's step-size rule for a batch, image by image: `observe` each iterate's loss in order, then
    `checkpoint` after it; the caller moves the images it halves back to their highest-loss point."""

    def __init__(self, loss0: torch.Tensor, eta0: float, steps: int) -> None:
        self.marks = set(checkpoints(steps)) - {0}
        self.eta = torch.full_like(loss0, eta0)
        self.prev = loss0.clone()  # the loss of the point the next step starts from
        self.best = loss0.clone()  # f_max
        self.rises = torch.zeros_like(loss0)  # steps since the last checkpoint on which the loss rose
        self.last_mark = 0
        self.best_at_mark = loss0.clone()  # f_max at the last checkpoint
        self.halved_at_mark = torch.zeros_like(loss0, dtype=torch.bool)  # w_0 halves nothing

    def observe(self, loss: torch.Tensor) -> torch.Tensor:
        """Record the next iterate's loss; returns where it is a new f_max."""
        self.rises += (loss > self.prev).float()
        up = loss > self.best
        self.best = torch.where(up, loss, self.best)
        self.prev = loss.clone()
        return up

    def checkpoint(self, k: int) -> torch.Tensor | None:
        """After iterate k: None unless k is a checkpoint, else where eta was halved (conditions 1 or 2)."""
        if k not in self.marks:
            return None
        stalled = self.rises < RHO * (k - self.last_mark)  # condition 1
        frozen = ~self.halved_at_mark & (self.best <= self.best_at_mark)  # condition 2
        halve = stalled | frozen
        self.eta = torch.where(halve, self.eta / 2, self.eta)
        self.prev = torch.where(halve, self.best, self.prev)  # the next step starts from x_max
        self.rises.zero_()
        self.last_mark, self.best_at_mark, self.halved_at_mark = k, self.best.clone(), halve
        return halve


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


def run_once(detector: Detector, x0: torch.Tensor, y: torch.Tensor, p: APGDParams, *,
             first_crossing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One start of Algorithm 1 on a batch: (f_max, x_max) per image.

    `first_crossing` (tests only: the behaviour this module replaced) returns instead the first misclassified
    iterate where there is one, and stops once every image has one."""
    xk = _start(x0, p)
    loss, g, logits = loss_and_grad(detector, xk, y, p.eot)
    rule = StepSizeRule(loss, p.step_size * p.eps, p.steps)
    x_best, g_best, x_prev = xk.clone(), g.clone(), xk.clone()
    crossed, x_cross = logits.argmax(1) != y, xk.clone()
    for k in range(1, p.steps + 1):
        if first_crossing and bool(crossed.all()):
            break
        z = _project(xk + _view(rule.eta) * _direction(g, p.norm), x0, p.eps, p.norm)
        x_new = z if k == 1 else _project(xk + MOMENTUM * (z - xk) + (1 - MOMENTUM) * (xk - x_prev), x0, p.eps,
                                          p.norm)
        x_prev, xk = xk, x_new
        loss, g, logits = loss_and_grad(detector, xk, y, p.eot)
        up = rule.observe(loss)
        x_best[up], g_best[up] = xk[up], g[up]
        hit = (logits.argmax(1) != y) & ~crossed
        x_cross[hit] = xk[hit]
        crossed |= hit
        halve = rule.checkpoint(k)
        if halve is not None and bool(halve.any()):
            xk, g = xk.clone(), g.clone()
            xk[halve], g[halve] = x_best[halve], g_best[halve]
    if first_crossing:
        return rule.best, torch.where(_view(crossed), x_cross, x_best)
    return rule.best, x_best


def best_of_restarts(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: APGDParams, *,
                     first_crossing: bool = False) -> torch.Tensor:
    """`p.restarts` starts on every image; each image keeps the start whose x_max has the highest loss."""
    best_loss = torch.full((len(x),), -math.inf, device=x.device)
    adv = x.clone()
    for _ in range(p.restarts):
        loss, xa = run_once(detector, x, y, p, first_crossing=first_crossing)
        better = loss > best_loss
        adv[better], best_loss = xa[better], torch.where(better, loss, best_loss)
    return adv


@register_backend("apgd", "native", eot=True)
def apgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: APGDParams) -> torch.Tensor:
    """APGD-CE, batched; images the detector already misclassifies are returned as they are."""
    return apgd_batched(detector, x, y, p)


def apgd_batched(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: APGDParams, *,
                 first_crossing: bool = False) -> torch.Tensor:
    """The backend in chunks of `CHUNK` images (`first_crossing`: tests only, see `run_once`)."""
    detector.eval()
    dev = detector.device
    x, y = x.to(dev, torch.float32), y.to(dev, torch.int64)
    out = []
    for i in range(0, len(x), CHUNK):
        xs, ys = x[i : i + CHUNK], y[i : i + CHUNK]
        with torch.no_grad():
            todo = torch.nonzero(detector(xs).argmax(1) == ys).flatten()
        adv = xs.clone()
        if len(todo):
            adv[todo] = best_of_restarts(detector, xs[todo], ys[todo], p, first_crossing=first_crossing)
        out.append(adv.detach().cpu())
    return torch.cat(out) if out else x.cpu()
