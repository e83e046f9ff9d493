"""Per-image robustness read from stored predictions, and the leaderboard's two figures drawn from it:

- robust accuracy against the budget, per model group: at each budget, a fake counts as detected when the model
  detects it unperturbed and under every bounded attack cell the suite ran against the model at that budget
  (white-box, transfer, adaptive); the mean over training seeds with its interval as a band;
- the security-evaluation curve, per model group: the share of attacked fakes still detected when the attacker
  may deliver a perturbation of at most a given L2 (before storage; success judged on the stored image), from
  the smallest successful minimum-norm perturbation per image; its median is where the curve crosses one half.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.report.board import Board
from bench.report.figures import plot_accuracy_curves
from bench.report.ranking import headline_budget as ranking_headline
from bench.report.replicas import group_rows, replica_sets
from bench.results.metrics import Proportion, replica_mean

Row = dict[str, Any]
CURVE_POINTS = 200  # at most this many budgets per curve (quantiles of the per-image L2 beyond)


def detected(b: Board, key: str) -> dict[str, bool]:
    """image id -> detected (P(real) < 0.5) for a stored cell's predictions."""
    frame = b.results.predictions([key])
    return {str(i): float(p) < 0.5 for i, p in zip(frame["image_id"], frame["p_real"], strict=True)}


def per_image_l2(b: Board, r: Row) -> dict[str, float] | None:
    """Per image id, the L2 of an attack cell's delivered perturbation (the 8-bit image, before storage adds its
    own change; success is judged on the stored image): the predictions' `l2_before` column; None when the store
    has none (a store made before it was recorded)."""
    frame = b.results.predictions([r["key"]])
    if "l2_before" in frame.columns and frame["l2_before"].notna().all() and len(frame):
        return {str(i): float(d) for i, d in zip(frame["image_id"], frame["l2_before"], strict=True)}
    return None


def worst_case(b: Board, v: Row, cells: list[Row]) -> dict | None:
    """Per attacked fake: detected unperturbed and under every cell; a Proportion dict (None without cells)."""
    attacked = {str(i) for i in b.results.plan.attack_ids}
    if not cells or b.clean.get(v["name"]) is None:
        return None
    robust = {i: d for i, d in detected(b, v["clean_key"]).items() if i in attacked}
    for r in cells:
        adv = detected(b, r["key"])
        robust = {i: d and adv.get(i, False) for i, d in robust.items()}
    return Proportion(sum(robust.values()), len(robust)).as_dict()


def min_norm_l2(b: Board, v: Row, cells: list[Row]) -> list[float] | None:
    """Per attacked fake, the smallest L2 of a successful minimum-norm example against `v` (0 for a fake `v`
    misses unperturbed, infinite for one no attack fooled); None when no cell has per-image L2."""
    clean = detected(b, v["clean_key"]) if b.clean.get(v["name"]) is not None else None
    if clean is None:
        return None
    best: dict[str, float] = {}
    for r in cells:
        l2 = per_image_l2(b, r)
        if l2 is None:
            continue
        adv = detected(b, r["key"])
        for i, d in l2.items():
            best[i] = min(best.get(i, math.inf), d if not adv.get(i, True) else math.inf)
    return [0.0 if not clean.get(i, True) else d for i, d in best.items()] if best else None


def headline_budget(b: Board) -> tuple[str, float] | None:
    """(norm, budget) of the suite's headline budget, as the ranking chooses it (`bench.report.ranking`)."""
    head = ranking_headline(b.ls)
    return (head.norm, head.eps) if head else None


def bounded_cells(b: Board, target: str, norm: str, budget: float) -> list[Row]:
    """The suite's stored bounded attack cells against `target` at `budget` in `norm` (any threat, adaptive too)."""
    return [r for r in b.attack if r["target"] == target and isinstance(r["metrics"], dict)
            and r["budget"] is not None and r["norm"] == norm and r["budget_value"] is not None
            and abs(float(r["budget_value"]) - budget) < 1e-12]


def min_norm_cells(b: Board, target: str) -> list[Row]:
    return [r for r in b.attack if r["target"] == target and isinstance(r["metrics"], dict)
            and r["family"] == "minimum-norm"]


def robust_against_budget(b: Board, norm: str) -> tuple[dict[str, tuple[list, list, list, list]], dict[float, list]]:
    """Per group label: (budgets, accuracy, lo, hi) of the worst case over the bounded attacks at each budget;
    and per budget the attack titles that entered it."""
    budgets = sorted({float(r["budget_value"]) for r in b.attack if r["budget"] is not None and r["norm"] == norm
                      and r["budget_value"] is not None and isinstance(r["metrics"], dict)})
    sets = replica_sets(b)
    series: dict[str, tuple[list, list, list, list]] = {}
    for v in group_rows(b):
        xs, acc, lo, hi = [], [], [], []
        for e in budgets:
            props = [p for rv in sets[v["name"]] if (p := worst_case(b, rv, bounded_cells(b, rv["name"], norm, e)))]
            if props:
                m = replica_mean(props)
                xs.append(e)
                acc.append(m["value"])
                lo.append(m["lo"])
                hi.append(m["hi"])
        if xs:
            series[v["label"]] = (xs, acc, lo, hi)
    titles = {e: sorted({r["title"] for r in b.attack if r["budget"] is not None and r["norm"] == norm
                         and r["budget_value"] is not None and abs(float(r["budget_value"]) - e) < 1e-12})
              for e in budgets}
    return series, titles


def security_curve(b: Board) -> tuple[dict[str, tuple[list, list, list, list]], list[str]]:
    """Per group label: (L2 budgets, share still detected, lo, hi) from the minimum-norm attacks' per-image L2
    of the delivered perturbation (success after storage); and the groups whose cells hold no per-image L2 (left
    out)."""
    sets = replica_sets(b)
    per_group: dict[str, list[list[float]]] = {}
    missing = []
    for v in group_rows(b):
        runs = []
        for rv in sets[v["name"]]:
            cells = min_norm_cells(b, rv["name"])
            if not cells:
                continue
            d = min_norm_l2(b, rv, cells)
            if d is None:
                missing.append(v["label"])
                break
            runs.append(d)
        if runs:
            per_group[v["label"]] = runs
    finite = [d for runs in per_group.values() for run in runs for d in run if math.isfinite(d)]
    if not finite:
        return {}, missing
    steps = np.unique(np.asarray(finite))  # the curve changes only at these budgets
    if len(steps) > CURVE_POINTS:
        steps = np.quantile(steps, np.linspace(0.0, 1.0, CURVE_POINTS))
    grid = sorted({0.0, *steps.tolist(), 1.05 * max(finite)})
    series = {}
    for label, runs in per_group.items():
        accs = [replica_mean([Proportion(sum(d > e for d in run), len(run)).as_dict() for run in runs])
                for e in grid]
        series[label] = (grid, [a["value"] for a in accs], [a["lo"] for a in accs], [a["hi"] for a in accs])
    return series, sorted(set(missing))


def figures(b: Board, stem: str, norm: str | None) -> list[str]:
    """Draw the two figures into the board's folder; their markdown (caption and image), one entry per figure."""
    out = []
    if norm:
        series, titles = robust_against_budget(b, norm)
        if series and len(next(iter(series.values()))[0]) > 1:
            path = b.out_dir / f"{stem}-robust-budget.png"
            name = "L-inf eps" if norm == "linf" else "L2 eps"
            plot_accuracy_curves(series, name, "Robust accuracy: worst case over the bounded attacks", path,
                                 markers=True)
            b.figures.append(path)
            which = "; ".join(f"{e:g}: {', '.join(t)}" for e, t in titles.items())
            out.append(f"**Robust accuracy against the budget.** Per model, the share of attacked fakes detected "
                       f"unperturbed and under every bounded attack the suite ran at that {name} (band: 95% "
                       f"interval over seeds and images). Attacks per budget: {which}.\n\n"
                       f"![Robust accuracy against {name}]({path.name})")
    series, missing = security_curve(b)
    if series:
        path = b.out_dir / f"{stem}-security-curve.png"
        plot_accuracy_curves(series, "L2 budget (delivered, before storage)",
                             "Security evaluation: minimum-norm attacks", path,
                             markers=False, steps=True)
        b.figures.append(path)
        note = (f" Left out (stored before per-image L2 was kept; rerun with --force): {', '.join(missing)}."
                if missing else "")
        out.append("**Security-evaluation curve.** Per model, the share of attacked fakes still detected when the "
                   "attacker may deliver a perturbation of at most the given L2 (before storage; success is judged on "
                   "the stored image), from the smallest one any minimum-norm attack found per image; the curve "
                   "crosses one half at the median minimum-norm L2 of "
                   f"the summary (band: 95% interval over seeds and images).{note}\n\n"
                   f"![Security-evaluation curve]({path.name})")
    elif missing:
        out.append("**Security-evaluation curve**: not drawn: the minimum-norm cells were stored before per-image "
                   "L2 was kept (rerun with --force).")
    return out
