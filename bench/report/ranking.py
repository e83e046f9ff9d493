"""The ranking on two axes (PROVISIONAL: issue 21 replaces this module; the API is fixed in its contract).

- robust: per image, detected unperturbed and under every bounded attack cell of the suite at its headline
  budget (the table budget shared by most bounded attacks; white-box, transfer and adaptive cells), the mean
  over training seeds with `bench.metrics.replica_mean`'s interval;
- min_norm: per image, the smallest L2 (after storage) of a successful minimum-norm attack (0 for a fake not
  detected unperturbed, infinite for one no such attack fooled); per seed the median with its distribution-free
  95% interval (binomial order statistics), the mean over seeds of each.

Ranks tie overlapping intervals (`bench.metrics.tied_ranks`); flagged (degenerate) rows rank after the others.
No paired comparison here: `baseline_diffs` is empty and `separated` counts pairs with disjoint intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.metrics import replica_mean, tied_ranks
from bench.report.curves import bounded_cells, headline_budget, min_norm_cells, min_norm_l2, worst_case
from bench.report.replicas import degenerate_count, group_rows, replica_sets, seeds_of

if TYPE_CHECKING:
    from bench.report.leaderboard import Board

Row = dict[str, Any]
AXES = ("robust", "min_norm")


@dataclass(frozen=True)
class AxisValue:
    value: float | None
    lo: float | None
    hi: float | None
    n: int
    seeds: int
    rank: int | None
    tied: bool


@dataclass(frozen=True)
class PairDiff:
    axis: str
    a: str
    b: str
    diff: float
    lo: float
    hi: float
    separated: bool


@dataclass(frozen=True)
class Ranking:
    headline: str
    rows: dict[str, dict[str, AxisValue]]
    labels: dict[str, str]
    order: list[str]
    flagged: dict[str, str]
    separated: dict[str, tuple[int, int]]
    baseline_diffs: list[PairDiff]


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median with its distribution-free 95% interval (order statistics of a Binomial(n, 1/2))."""
    from scipy.stats import binom  # lazy: scipy is slow to import

    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    lo_i = max(int(binom.ppf(0.025, n, 0.5)) - 1, 0)
    hi_i = min(int(binom.isf(0.025, n, 0.5)), n - 1)
    return float(np.median(x)), float(x[lo_i]), float(x[hi_i])


def _min_norm_value(per_seed: list[list[float]]) -> tuple[float | None, float | None, float | None, int]:
    if not per_seed:
        return None, None, None, 0
    meds = [median_interval(v) for v in per_seed]
    mean = [float(np.mean([m[j] for m in meds])) for j in range(3)]
    return mean[0], mean[1], mean[2], int(round(np.mean([len(v) for v in per_seed])))


def compute_ranking(b: Board) -> Ranking:
    hb = headline_budget(b)
    headline = f"{'L-inf' if hb[0] == 'linf' else 'L2'} eps = {hb[1]:g}" if hb else "no bounded attack"
    sets = replica_sets(b)
    raw: dict[str, dict[str, tuple]] = {}
    labels, flagged = {}, {}
    for v in group_rows(b):
        g = v["name"]
        labels[g] = v["label"]
        k = degenerate_count(b, v)
        if k:
            flagged[g] = f"degenerate, {k} of {seeds_of(b, v)} seeds" if seeds_of(b, v) > 1 else "degenerate"
        robust, norms = [], []
        for rv in sets[g]:
            p = worst_case(b, rv, bounded_cells(b, rv["name"], *hb)) if hb else None
            if p is not None:
                robust.append(p)
            mn = min_norm_l2(b, rv, min_norm_cells(b, rv["name"]))
            if mn:
                norms.append(mn)
        agg = replica_mean(robust) if robust else None
        raw[g] = {"robust": (agg["value"], agg["lo"], agg["hi"], agg["n"]) if agg else (None, None, None, 0),
                  "min_norm": _min_norm_value(norms)}
        raw[g]["seeds"] = (len(robust), len(norms))
    order = sorted(raw, key=lambda g: (g in flagged, -(raw[g]["robust"][0] if raw[g]["robust"][0] is not None
                                                       else -1.0)))
    rows: dict[str, dict[str, AxisValue]] = {g: {} for g in raw}
    separated = {}
    for j, axis in enumerate(AXES):
        ranked = sorted(raw, key=lambda g, a=axis: (g in flagged, -_key(raw[g][a][0])))
        ranks: dict[str, tuple[int | None, bool]] = {}
        offset = 0
        for part in ([g for g in ranked if g not in flagged], [g for g in ranked if g in flagged]):
            have = [g for g in part if raw[g][axis][0] is not None]
            intervals = [(_key(raw[g][axis][1]), _key(raw[g][axis][2])) for g in have]
            for g, (r, tied) in zip(have, tied_ranks(intervals), strict=True):
                ranks[g] = (offset + r, tied)
            offset += len(have)
        pairs = [(x, y) for i, x in enumerate(ranked) for y in ranked[i + 1:]
                 if raw[x][axis][0] is not None and raw[y][axis][0] is not None]
        separated[axis] = (sum(_key(raw[x][axis][1]) > _key(raw[y][axis][2]) or
                               _key(raw[y][axis][1]) > _key(raw[x][axis][2]) for x, y in pairs), len(pairs))
        for g in raw:
            value, lo, hi, n = raw[g][axis]
            rank, tied = ranks.get(g, (None, False))
            rows[g][axis] = AxisValue(value, lo, hi, n, raw[g]["seeds"][j], rank, tied)
    return Ranking(headline, rows, labels, order, flagged, separated, [])


def _key(x: float | None) -> float:
    return -1.0 if x is None else x
