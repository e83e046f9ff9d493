"""Formatting numbers for the leaderboard: every accuracy with its n and 95% interval."""

from __future__ import annotations

import math


def pct(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def prop(d: dict | None, mark: bool = False) -> str:
    """`97.5% [94.1, 99.0] n=200`; a leading star when `mark` (best in its column). A mean over training
    replicas (`bench.metrics.replica_mean`, seeds > 1) says so: `84.1% [78.0, 89.3] n=64 x3 seeds`."""
    if not d or not d.get("n"):
        return "n/a"
    s = f"{pct(d['value'])} [{100 * d['lo']:.1f}, {100 * d['hi']:.1f}] n={d['n']}"
    if d.get("seeds", 1) > 1:
        s += f" x{d['seeds']} seeds"
    return f"**{s}** *" if mark else s


def num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"
