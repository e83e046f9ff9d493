"""Native attacks (`backend: native`): batched PyTorch FGSM, CW-L2 and PGD on CPU or CUDA.

Every function has the backend signature `fn(detector, x, y, params) -> x_adv`: `x` float32 NCHW in
[0, 1] (any device), `y` the true labels; returns float32 CPU tensors in [0, 1]. All are untargeted.
The detector is called as a whole (it normalises its [0, 1] input itself).

CW-L2 (eqs. 3-6 of the paper) in detail:

- change of variables x' = (tanh(w) + 1) / 2 (eq. 5); w starts at atanh((2x - 1) * 0.999999), the
  factor keeping atanh finite at pixels 0 and 1 (as in Carlini and Wagner's code, ART and Foolbox);
- objective ||x' - x||_2^2 + c * f(x') (eq. 6), f(x') = max(Z_y - max_{i != y} Z_i, -kappa) on logits
  (eq. 4); for a 2-class detector max_{i != y} Z_i is simply the other logit;
- an iterate is adversarial when the wrong logit leads by at least kappa (f reaches -kappa), as in
  ART and Foolbox; the best (smallest-L2) adversarial per image over all steps is kept, images with
  none return the original x (as ART does);
- c per image is searched in [c_min, c_max] for the smallest value that succeeds: the first step
  tries c_min (success there settles the image: nothing smaller is in range); each later step bisects
  geometrically between the largest failing c and the smallest succeeding one (c_max while none has
  succeeded); an image that has not succeeded by the last step tries c_max itself, and failure at
  c_max settles it (no c in range works). Settled images leave the batch and cost no more compute;
- Adam (beta 0.9/0.999, eps 1e-8) on w, fresh per search step; with `abort_early` a search step
  ends when the batch's loss has not fallen by 0.01 % over a tenth of `max_iterations`, as in the
  reference code and Foolbox (checked on the loss shifted by the constant c * kappa, which keeps it
  non-negative as there). A per-image test would be cheaper but stops images in the overshoot that
  follows their first success, before the L2 is refined.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from bench.attacks.params import CWL2Params, FGSMParams, PGDParams
from bench.attacks.registry import register_backend
from bench.models.detector import Detector

NATIVE_BATCH = 256  # images per chunk (bounds memory; CW runs each chunk as one batch)
TANH_SMOOTHER = 0.999999
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _prepare(detector: Detector, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    detector.eval()
    dev = detector.device
    return x.to(dev, torch.float32), y.to(dev, torch.int64)


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(n, i + NATIVE_BATCH)) for i in range(0, n, NATIVE_BATCH)]


def _loss_grad(detector: Detector, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy loss J(x, y) with respect to the [0, 1] input."""
    xg = x.detach().requires_grad_(True)
    loss = F.cross_entropy(detector(xg), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    return grad


# ---------------------------------------------------------------- FGSM
def fgsm(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: FGSMParams) -> torch.Tensor:
    """FGSM, eq. (1): x + eps * sign(grad_x J(x, y)), clipped to [0, 1]."""
    x, y = _prepare(detector, x, y)
    out = []
    for s in _chunks(len(x)):
        grad = _loss_grad(detector, x[s], y[s])
        out.append((x[s] + p.eps * grad.sign()).clamp(0.0, 1.0).cpu())
    return torch.cat(out) if out else x.cpu()


# ---------------------------------------------------------------- PGD
def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _pgd_start(x0: torch.Tensor, p: PGDParams) -> torch.Tensor:
    if not p.random_start:
        return x0
    if p.norm == "linf":
        r = torch.empty_like(x0).uniform_(-p.eps, p.eps)
    else:  # uniform in the L2 ball: the first d coordinates of a uniform point on the (d+1)-sphere
        n, d = len(x0), x0[0].numel()
        s = torch.randn(n, d + 2, device=x0.device)
        r = (s / s.norm(dim=1, keepdim=True))[:, :d].view_as(x0) * p.eps
    return (x0 + r).clamp(0.0, 1.0)


def pgd(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: PGDParams) -> torch.Tensor:
    """PGD ascent on the cross-entropy: `steps` steps of `step_size` (sign step for L-inf, unit-L2
    gradient step for L2), each followed by projection onto the eps ball around x and into [0, 1].
    """
    x, y = _prepare(detector, x, y)
    out = []
    for s in _chunks(len(x)):
        x0, ys = x[s], y[s]
        xa = _pgd_start(x0, p)
        for _ in range(p.steps):
            g = _loss_grad(detector, xa, ys)
            if p.norm == "linf":
                xa = xa + p.step_size * g.sign()
                xa = x0 + (xa - x0).clamp(-p.eps, p.eps)
            else:
                xa = xa + p.step_size * (g / _flat_norm(g))
                d = xa - x0
                xa = x0 + d * torch.clamp(p.eps / _flat_norm(d), max=1.0)
            xa = xa.clamp(0.0, 1.0)
        out.append(xa.detach().cpu())
    return torch.cat(out) if out else x.cpu()


# ---------------------------------------------------------------- CW-L2
def _margins(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z_y, max_{i != y} Z_i) per row."""
    z_true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return z_true, other.max(dim=1).values


def _cw_optimise(
    detector: Detector,
    x: torch.Tensor,
    w0: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    p: CWL2Params,
    best_l2: torch.Tensor,
    best_adv: torch.Tensor,
) -> torch.Tensor:
    """One search step for the given images at their constants `c`: Adam on w = w0 + delta.

    Updates `best_l2` / `best_adv` in place; returns which images found an adversarial.
    """
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    delta = torch.zeros_like(w0)
    m = torch.zeros_like(w0)
    v = torch.zeros_like(w0)
    prev = math.inf
    check_every = max(1, math.ceil(p.max_iterations / 10))
    b1, b2 = ADAM_BETAS
    kappa = p.confidence
    for it in range(p.max_iterations):
        w = (w0 + delta).requires_grad_(True)
        xa = (torch.tanh(w) + 1.0) / 2.0  # eq. (5)
        z_true, z_other = _margins(detector(xa), y)
        f = torch.clamp(z_true - z_other, min=-kappa)  # eq. (4)
        l2sq = (xa - x).flatten(1).pow(2).sum(dim=1)  # eq. (3)
        loss = (l2sq + c * f).sum()  # eq. (6), summed over the images
        (g,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            margin = z_other - z_true
            success = margin >= kappa if kappa > 0 else margin > 0
            found |= success
            better = success & (l2sq < best_l2)
            best_l2.copy_(torch.where(better, l2sq, best_l2))
            best_adv.copy_(torch.where(better.view(-1, 1, 1, 1), xa, best_adv))
            # Adam with bias correction
            t = it + 1
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            delta.sub_(p.learning_rate * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + ADAM_EPS))
            if p.abort_early and it % check_every == 0:
                # the reference code's test, on the loss shifted by the constant c * kappa (>= 0)
                shifted = float(loss) + float((c * kappa).sum())
                if shifted > 0.9999 * prev:
                    break
                prev = shifted
    return found


def _cw_l2_batch(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    n = len(x)
    dev = x.device
    w0 = torch.atanh((2.0 * x - 1.0) * TANH_SMOOTHER)
    c = torch.full((n,), p.c_min, device=dev, dtype=torch.float32)
    lo = torch.full((n,), math.nan, device=dev)  # largest c known to fail
    hi = torch.full((n,), math.nan, device=dev)  # smallest c known to succeed
    pending = torch.ones(n, dtype=torch.bool, device=dev)
    best_l2 = torch.full((n,), math.inf, device=dev)
    best_adv = x.clone()
    for step in range(p.binary_search_steps):
        idx = torch.nonzero(pending).flatten()
        if len(idx) == 0:
            break
        b_l2, b_adv = best_l2[idx], best_adv[idx]
        found = _cw_optimise(detector, x[idx], w0[idx], y[idx], c[idx], p, b_l2, b_adv)
        best_l2[idx], best_adv[idx] = b_l2, b_adv
        ci = c[idx]
        hi[idx] = torch.where(found, torch.fmin(hi[idx], ci), hi[idx])
        lo[idx] = torch.where(found, lo[idx], torch.fmax(lo[idx], ci))
        # settled: succeeded at c_min (nothing smaller in range) or failed at c_max (nothing works)
        settled = (found & (ci <= p.c_min)) | (~found & (ci >= p.c_max))
        pending[idx[settled]] = False
        h, never = hi[idx], torch.isnan(hi[idx])
        upper = torch.where(never, torch.full_like(ci, p.c_max), h)
        lower = torch.where(torch.isnan(lo[idx]), torch.full_like(ci, p.c_min), lo[idx])
        nxt = torch.sqrt(lower * upper)  # geometric bisection of [largest failure, smallest success or c_max]
        if step == p.binary_search_steps - 2:  # last step: an image that never succeeded tries c_max
            nxt = torch.where(never, torch.full_like(ci, p.c_max), nxt)
        c[idx] = torch.where(settled, ci, nxt)
    return best_adv


def cw_l2(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: CWL2Params) -> torch.Tensor:
    """Carlini-Wagner L2, eqs. (3)-(6), batched, with a per-image search for c in [c_min, c_max]."""
    x, y = _prepare(detector, x, y)
    return torch.cat([_cw_l2_batch(detector, x[s], y[s], p).cpu() for s in _chunks(len(x))]) if len(x) else x.cpu()


register_backend("fgsm", "native", fgsm)
register_backend("cw_l2", "native", cw_l2)
register_backend("pgd", "native", pgd)
