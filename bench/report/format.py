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


def compact(d: dict | None, mark: bool = False) -> str:
    """`97.9 (85-100)`: a proportion in percent with its 95% interval rounded to whole percent; n and the seeds
    go in the table's caption (`caption_n`). A leading star when `mark`."""
    if not d or not d.get("n"):
        return "n/a"
    s = f"{100 * d['value']:.1f} ({100 * d['lo']:.0f}-{100 * d['hi']:.0f})"
    return f"**{s}** *" if mark else s


def compact_norm(value: float | None, lo: float | None, hi: float | None) -> str:
    """`2.66 (2.4-2.8)`: an L2 norm with its interval; `∞` where no attack succeeded on half the images."""
    if value is None:
        return "n/a"
    text = "∞" if math.isinf(value) else f"{value:.2f}"
    if lo is None or hi is None:
        return text
    return f"{text} ({_short(lo)}-{_short(hi)})"


def _short(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.2g}" if x < 10 else f"{x:.0f}"
