"""The delivered image: what an adversary hands over is an 8-bit image, and its budget is checked on that image.

An attack returns floats; the file it delivers holds 8-bit values (then the suite's storage, `bench.attacks.
storage`, may JPEG it). The budget of a bounded attack (a declared norm and budget, `bench.attacks.registry`)
is checked on the delivered image, before storage and after the 8-bit rounding:

- `deliver(adv, x, eps, norm)`: the rounded image projected onto the eps ball on the 8-bit grid. L-inf: each
  value clamped to [ceil((x - eps) 255), floor((x + eps) 255)] (where that range is empty, which only a clean
  image off the grid with eps under 1/255 allows, to the value nearest x); L2: the perturbation shrunk by the
  largest factor whose rounded image fits (a bisection). The loaders deliver clean images on the grid (every
  image is read as 8 bits), where rounding alone already keeps an L-inf budget that is a whole number of
  levels;
- `on_grid(attack, params)`: an L-inf budget as run, floor(eps 255) / 255, the largest perturbation the grid
  allows within eps. An attack run at it returns floats whose rounding never leaves the ball (for a clean image
  on the grid), so the image its decisions were taken on is the image delivered: no projection moves it after.
  An ensemble's members get the same.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bench.attacks.params import AttackParams
from bench.attacks.registry import get_attack
from bench.attacks.storage import to_uint8

LEVELS = 255.0
SLACK = 1e-4  # in 8-bit levels: float error in x * 255 and eps * 255
BISECTIONS = 24
L2_TOLERANCE = 1e-5


def grid_eps(eps: float) -> float:
    """The largest L-inf perturbation on the 8-bit grid within eps: floor(eps 255) / 255."""
    return math.floor(eps * LEVELS + SLACK) / LEVELS


def on_grid(attack: str, params: AttackParams) -> AttackParams:
    """`params` with an L-inf budget as run on the 8-bit grid (`grid_eps`; an ensemble's members' too)."""
    spec = get_attack(attack)
    if spec.budget is None or spec.norm_of(params) != "linf":
        return params
    data = params.model_dump()
    data[spec.budget] = grid_eps(float(data[spec.budget]))
    for member in (data.get("members") or {}).values():  # an ensemble: a member's explicit budget too
        mspec = get_attack(member["attack"])
        if mspec.budget is not None and mspec.budget in member.get("params", {}):
            member["params"][mspec.budget] = grid_eps(float(member["params"][mspec.budget]))
    return spec.params.model_validate(data)


def budget_of(attack: str, params: AttackParams | dict[str, Any]) -> tuple[float, str] | None:
    """(eps, norm) of a bounded attack point; None for an unbounded one (minimum-norm, controls without one)."""
    spec = get_attack(attack)
    eps = spec.budget_of(params)
    return None if eps is None else (eps, spec.norm_of(params))


def deliver(adv: torch.Tensor, x: torch.Tensor, eps: float | None = None, norm: str = "linf") -> torch.Tensor:
    """The delivered uint8 image (CPU, NCHW) of an attack's float output `adv` for clean `x`: rounded to 8 bits
    and, with a budget `eps`, projected onto the eps ball (in `norm`) on the 8-bit grid (see the module doc)."""
    adv, x = adv.detach().cpu().float(), x.detach().cpu().float()
    u8 = to_uint8(adv)
    if eps is None or len(adv) == 0:
        return u8
    if norm == "linf":
        xl = x.double() * LEVELS
        lo = torch.ceil(xl - eps * LEVELS - SLACK).clamp(0, 255)
        hi = torch.floor(xl + eps * LEVELS + SLACK).clamp(0, 255)
        empty = lo > hi
        nearest = torch.round(xl).clamp(0, 255)
        lo, hi = torch.where(empty, nearest, lo), torch.where(empty, nearest, hi)
        return torch.minimum(torch.maximum(u8.double(), lo), hi).to(torch.uint8)
    return _within_l2(adv, x, u8, eps)


def _l2(u8: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (u8.float() / LEVELS - x).flatten(1).norm(dim=1)


def _within_l2(adv: torch.Tensor, x: torch.Tensor, u8: torch.Tensor, eps: float) -> torch.Tensor:
    """Per image over the L2 budget after rounding: the rounded x + t (adv - x) for the largest t in [0, 1]
    (bisection) whose L2 distance to x is within eps; t = 0 (x rounded) if none is."""
    over = _l2(u8, x) > eps + L2_TOLERANCE
    if not bool(over.any()):
        return u8
    xs, d = x[over], adv[over] - x[over]
    lo = torch.zeros(len(xs))  # the largest t known to fit (t = 0 is x itself, rounded)
    hi = torch.ones(len(xs))
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        fits = _l2(to_uint8(xs + mid.view(-1, 1, 1, 1) * d), xs) <= eps + L2_TOLERANCE
        lo, hi = torch.where(fits, mid, lo), torch.where(fits, hi, mid)
    out = u8.clone()
    out[over] = to_uint8(xs + lo.view(-1, 1, 1, 1) * d)
    return out


def delivered_budget(u8: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> dict[str, Any]:
    """How the delivered images sit in their budget: the largest perturbation, and how many are over it."""
    d = (u8.float() / LEVELS - x.detach().cpu().float()).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    tol = SLACK / LEVELS if norm == "linf" else L2_TOLERANCE
    return {"eps": eps, "norm": norm, "max": float(size.max()) if len(size) else 0.0,
            "over": int((size > eps + tol).sum())}
