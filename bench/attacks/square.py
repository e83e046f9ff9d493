"""Native Square attack (`attack: square, backend: native`), L-inf, batched: score-based, no gradients.

Andriushchenko et al. (2020), "Square Attack: a query-efficient black-box adversarial attack via random
search". Per image, on the margin loss Z_y - max_{i != y} Z_i (logits):

- start from vertical stripes: x + eps * s, s in {-1, +1} drawn per channel and column;
- each iteration draws one square per image, of side round(sqrt(p * H * W)) with p = `p_init` halved on
  the paper's schedule (after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 ten-thousandths of the
  iterations), at a random position, and sets the perturbation inside it to +-eps per channel (redrawn
  while that would change nothing); the candidate is kept when its margin is lower;
- an image leaves the batch once misclassified, so every query is one forward pass of one image that is
  still robust: the queries per image are the forward passes the pass counter sees.
"""

from __future__ import annotations

import math

import torch

from bench.attacks.params import SquareParams
from bench.attacks.registry import register_backend
from bench.attacks.restarts import with_restarts
from bench.models.detector import Detector

SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
            (10000, 512))
REDRAWS = 10  # redraws of a square's signs that would change nothing


def square_share(p_init: float, it: int, total: int) -> float:
    """The share of pixels the square covers at iteration `it` of `total` (the paper's schedule)."""
    t = int(it / total * 10000)
    for upper, div in SCHEDULE:
        if t <= upper:
            return p_init / div
    return p_init / 512


@torch.no_grad()
def _margin(detector: Detector, xa: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = detector(xa)
    z_true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return z_true - other, logits.argmax(1) != y


@torch.no_grad()
def _run(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: SquareParams) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    dev = x.device
    signs = torch.randint(0, 2, (n, c, 1, w), device=dev).float() * 2 - 1
    best = (x + p.eps * signs).clamp(0.0, 1.0)
    margin, fooled = _margin(detector, best, y)
    rows = torch.arange(h, device=dev).view(1, 1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, 1, w)
    for it in range(p.queries):
        act = torch.nonzero(~fooled).flatten()
        if len(act) == 0:
            break
        k = len(act)
        side = max(int(round(math.sqrt(square_share(p.p_init, it, p.queries) * h * w))), 1)
        side = min(side, h, w)
        r0 = torch.randint(0, h - side + 1, (k, 1, 1, 1), device=dev)
        c0 = torch.randint(0, w - side + 1, (k, 1, 1, 1), device=dev)
        window = (rows >= r0) & (rows < r0 + side) & (cols >= c0) & (cols < c0 + side)
        xs, cur = x[act], best[act]
        delta = cur - xs
        new_signs = torch.randint(0, 2, (k, c, 1, 1), device=dev).float() * 2 - 1
        for _ in range(REDRAWS):
            cand = torch.where(window, (xs + p.eps * new_signs).clamp(0.0, 1.0), cur)
            same = ((cand - cur).abs() < 1e-7).flatten(1).all(1)
            if not bool(same.any()):
                break
            redraw = torch.randint(0, 2, (k, c, 1, 1), device=dev).float() * 2 - 1
            new_signs = torch.where(same.view(-1, 1, 1, 1), redraw, new_signs)
        cand = (xs + torch.where(window, p.eps * new_signs, delta)).clamp(0.0, 1.0)
        m_new, f_new = _margin(detector, cand, y[act])
        better = m_new < margin[act]
        keep = act[better]
        best[keep] = cand[better]
        margin[keep] = m_new[better]
        fooled[keep] = f_new[better]
    return fooled, best


@register_backend("square", "native")
def square(detector: Detector, x: torch.Tensor, y: torch.Tensor, p: SquareParams) -> torch.Tensor:
    """Square attack, L-inf; images already misclassified cost one query and are returned as they are."""
    detector.eval()
    dev = detector.device
    x, y = x.to(dev, torch.float32), y.to(dev, torch.int64)
    if len(x) == 0:
        return x.cpu()
    _, broken = _margin(detector, x, y)
    return with_restarts(x, y, broken, p.restarts, lambda xx, yy: _run(detector, xx, yy, p)).cpu()
