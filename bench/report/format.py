"""Formatting for the leaderboard: every accuracy with its n and 95% interval, and text from a suite or its
data (labels, names, descriptions, subsets) made safe for markdown: `tabulate` here is the only way a table
is made (every cell and header passes through `md_cell`), `md_inline` for text outside tables."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate as _tabulate

_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")


def md_inline(text: Any) -> str:
    """Text as one markdown line: line breaks become spaces (so it cannot start a heading or a table row) and
    `|` is written `&#124;` (so it cannot split a table cell)."""
    return _BREAKS.sub(" ", str(text)).replace("|", "&#124;")


def md_cell(value: Any) -> Any:
    """A table cell: text through `md_inline`; numbers and None as they are (tabulate aligns and formats them)."""
    return md_inline(value) if isinstance(value, str) else value


MARKDOWN_FORMATS = ("github", "pipe")


def tabulate(rows: Iterable[Iterable[Any]], headers: Any = (), tablefmt: str = "simple", **kw: Any) -> str:
    """`tabulate.tabulate`; a markdown table (MARKDOWN_FORMATS) has every cell and header through `md_cell`,
    so a suite's text cannot add a column, a row or a heading to a leaderboard table."""
    if tablefmt in MARKDOWN_FORMATS:
        rows = [[md_cell(v) for v in row] for row in rows]
        if isinstance(headers, (list, tuple)):
            headers = [md_cell(h) for h in headers]
    return _tabulate(rows, headers, tablefmt=tablefmt, **kw)


def render_params(params: dict[str, str]) -> str:
    """An attack point's parameters as `k=v, ...` (values as its backend ran them)."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def pct(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def prop(d: dict | None, mark: bool = False) -> str:
    """`97.5% [94.1, 99.0] n=200`; a leading star when `mark` (best in its column). A mean over training
    replicas (`bench.results.metrics.replica_mean`, seeds > 1) says so: `84.1% [78.0, 89.3] n=64 x3 seeds`."""
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
