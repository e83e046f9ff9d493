"""The defense ranking: two axes, each ranked by paired comparisons (docs/intervals.md, "Ranking").

- **robust** (axis a): robust accuracy at the suite's headline budget. Per training seed and attacked fake,
  the fake counts as detected only if the model detects it unperturbed AND under every bounded attack cell
  at the headline budget against it (the suite's own attacks, both threat models, adaptive cells through an
  evaluation-time defense included). Attacks without a budget (minimum-norm ones, controls, the check
  attacks) never enter it. The budget: `report.headline` of the suite, else the most common table eps of
  its bounded L-inf attacks (the smallest of equally common ones). Declarations (family, norm, budget) come
  from the attack registry through the plan, never from attack names.
- **min_norm** (axis b): the median over attacked fakes of the smallest L2 of the delivered perturbation (the
  8-bit image the adversary delivers, before storage adds its own change: JPEG q95 alone moves a 32 px face by
  about 1.6, which would drown every difference) among the minimum-norm attack cells (family "minimum-norm")
  whose stored image fooled the model
  (P(real) >= 0.5); +inf for a fake no such attack fooled, 0 for a fake the model misses unperturbed.

Each axis: the mean over seeds (`value`) with its 95% interval (robust: Wilson and Student-t over seeds,
`bench.results.metrics.replica_mean`, as every accuracy of the leaderboard; min_norm: the two-stage bootstrap
percentile interval). Two rows are separated on an axis only when the paired, seed-stratified bootstrap
(`bench.report.paired`) gives a difference whose 95% interval excludes 0; a row's rank is 1 + the number of
rows separated above it (ties share ranks; rows flagged degenerate are ranked after the others).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.report import paired
from bench.report.board import Board
from bench.report.replicas import degenerate_count, group_label, group_rows, replica_sets
from bench.results.metrics import Proportion, replica_mean

Row = dict[str, Any]
AXES = ("robust", "min_norm")
AXIS_STAT = {"robust": "mean", "min_norm": "median"}


@dataclass(frozen=True)
class AxisValue:
    """One row's value on one axis. For min_norm, `value`, `lo` and `hi` may be +inf (more than half the
    fakes unbroken): show it as "> max_finite"."""

    value: float | None  # mean over seeds: a proportion in [0, 1] (robust) or an L2 norm (min_norm); None = n/a
    lo: float | None  # its 95% interval
    hi: float | None
    n: int  # images per seed
    seeds: int
    rank: int | None  # 1-based rank on this axis (ties share a rank)
    tied: bool  # shares its rank with another row
    cells: int = 0  # attack cells the axis read, over all seeds
    reason: str = ""  # why value is None (n/a), or a caveat on it
    max_finite: float | None = None  # min_norm: the largest finite per-image L2 of the row (for "> max")
    gave_up: int = 0  # seeds on which a cell of the axis comes from an attack that gave up (the ‡ flag)


@dataclass(frozen=True)
class PairDiff:
    axis: str  # "robust" or "min_norm"
    a: str  # group name of the defended model (replica-0 model/variant name, as report.replicas.group_rows)
    b: str  # group name of its undefended baseline
    diff: float  # value(a) - value(b)
    lo: float  # paired 95% interval of the difference
    hi: float
    separated: bool  # the interval excludes 0


@dataclass(frozen=True)
class Ranking:
    headline: str  # e.g. "L-inf eps = 0.02", the budget of the robust axis
    rows: dict[str, dict[str, AxisValue]]  # group name (every group of the plan) -> {"robust": ..., "min_norm": ...}
    labels: dict[str, str]  # group name -> display label (plain; `display_label` adds the degenerate flag)
    order: list[str]  # group names, best first on the robust axis (flagged rows last)
    flagged: dict[str, str]  # group name -> short reason (e.g. "degenerate, 1 of 3 seeds")
    separated: dict[str, tuple[int, int]]  # axis -> (pairs the paired comparison separates, pairs)
    baseline_diffs: list[PairDiff]  # each defended group against its undefended baseline, both axes
    headline_reason: str = ""  # how the headline budget was chosen
    baselines: dict[str, tuple[str, str]] = field(default_factory=dict)  # group -> (baseline group, rule used)
    pairs: dict[str, list[PairDiff]] = field(default_factory=dict)  # axis -> every pair (a above b by value)
    replicates: int = paired.B_DEFAULT


# ---------------------------------------------------------------------- the headline budget
@dataclass(frozen=True)
class Headline:
    norm: str
    eps: float
    reason: str

    @property
    def text(self) -> str:
        return f"{'L-inf' if self.norm == 'linf' else 'L2'} eps = {self.eps:g}"

    def holds(self, r: Row) -> bool:
        """Whether an attack-frame row is a bounded attack at this budget (its declarations, not its name)."""
        bv = r.get("budget_value")
        return (r.get("budget") is not None and bv is not None and not _nan(bv) and r.get("norm") == self.norm
                and math.isclose(float(bv), self.eps, rel_tol=1e-9, abs_tol=1e-12))


def headline_budget(ls: Any) -> Headline | None:
    """`report.headline` of the suite; else the most common table eps among its bounded L-inf attack entries
    (the smallest of equally common ones); else the same among bounded L2 entries; None without any."""
    cfg = ls.suite.report.headline
    if cfg is not None:
        return Headline(cfg.norm, float(cfg.eps), "set by the suite (report.headline)")
    for norm in ("linf", "l2"):
        points = {(a.key, float(a.budget_value)) for a in ls.attacks
                  if a.role == "attack" and a.budget is not None and a.in_table and a.norm == norm}
        if points:
            counts = Counter(eps for _, eps in points)
            top = max(counts.values())
            eps = min(e for e, c in counts.items() if c == top)
            entries = len({k for k, _ in points})
            return Headline(norm, eps, f"the most common table budget of the suite's bounded "
                                       f"{'L-inf' if norm == 'linf' else 'L2'} attacks, {top} of {entries} entries; "
                                       "`report.headline: {norm: linf, eps: ...}` sets another")
    return None


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ---------------------------------------------------------------------- per-image data
@dataclass
class _Axis:
    """One group's per-seed, per-image data on one axis (None: n/a, with the reason)."""

    x: np.ndarray | None
    cells: int
    reason: str = ""
    gave_up: int = 0


def _frames(b: Board, keys: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """cell key -> image id -> (P(real) of the stored image, L2 of the delivered perturbation: the 8-bit image the
    adversary delivers, before storage adds its own change (NaN where not recorded))."""
    out: dict[str, dict[str, tuple[float, float]]] = {k: {} for k in keys}
    frame = b.results.predictions(keys)
    for k, i, p, l2 in zip(frame["cell_key"], frame["image_id"], frame["p_real"], frame["l2_before"], strict=True):
        out[k][str(i)] = (float(p), float(l2))
    return out


def _stored(r: Row) -> bool:
    return isinstance(r.get("metrics"), dict)


def _axes_of_group(b: Board, members: list[Row], ids: list[str], head: Headline | None,
                   preds: dict[str, dict[str, tuple[float, float]]]) -> dict[str, _Axis]:
    """Both axes' arrays (seeds x images) of one group, from its replicas' clean and attack cells."""
    robust, mins = [], []
    robust_cells = min_cells = robust_gave = min_gave = 0
    why_robust = why_min = ""
    for rv in members:
        clean = preds.get(rv["clean_key"]) if b.clean.get(rv["name"]) else None
        if not clean or any(i not in clean for i in ids):
            why_robust = why_min = "a seed has no clean result in the store"
            continue
        detected = np.array([clean[i][0] < 0.5 for i in ids])
        cells = [r for r in b.attack if r["target"] == rv["name"]]
        bounded = [r for r in cells if head is not None and head.holds(r)]
        minimum = [r for r in cells if r.get("family") == "minimum-norm"]
        robust_cells += len(bounded)
        min_cells += len(minimum)
        robust_gave += any(r["craft_key"] in b.gave_up for r in bounded)
        min_gave += any(r["craft_key"] in b.gave_up for r in minimum)
        if not bounded:
            why_robust = why_robust or ("no bounded attack at the headline budget" if head else "no bounded attack")
        elif not all(_stored(r) for r in bounded):
            why_robust = why_robust or "a headline attack cell has no result in the store"
        else:
            ok = detected.copy()
            for r in bounded:
                got = preds[r["key"]]
                ok &= np.array([got[i][0] < 0.5 if i in got else True for i in ids])
            robust.append(ok)
        if not minimum:
            why_min = why_min or "no minimum-norm attack"
        elif not all(_stored(r) for r in minimum):
            why_min = why_min or "a minimum-norm attack cell has no result in the store"
        else:
            best = np.full(len(ids), np.inf)
            for r in minimum:
                got = preds[r["key"]]
                if any(i in got and math.isnan(got[i][1]) for i in ids):
                    why_min = why_min or ("per-image L2 not recorded (cells stored before it was): rerun the "
                                          "minimum-norm attack cells")
                    break
                fooled = np.array([got[i][1] if i in got and got[i][0] >= 0.5 else np.inf for i in ids])
                best = np.minimum(best, fooled)
            mins.append(np.where(detected, best, 0.0))  # a fake missed unperturbed needs no perturbation
    k = len(members)
    return {"robust": _Axis(np.array(robust, dtype=np.float64) if len(robust) == k and not why_robust else None,
                            robust_cells, why_robust, robust_gave),
            "min_norm": _Axis(np.array(mins, dtype=np.float64) if len(mins) == k and not why_min else None,
                              min_cells, why_min, min_gave)}


# ---------------------------------------------------------------------- baselines
def baseline_of(b: Board, v: Row, groups: set[str]) -> tuple[str, str] | None:
    """(baseline group, the rule that chose it) of a group's representative variant, or None (undefended).

    An evaluation-time defense: its base model. A model with `baseline:` in the suite: that model. A model
    with a training-time defense: its `init_from`, else the one model of the same architecture without a
    defense (none when there are several: set `baseline:`)."""
    if isinstance(v.get("defense"), str):  # (the frame holds NaN, not None, for no defense)
        base = v["model"]
        return (base, "its base model") if base in groups else None
    rm = b.ls.models.get(v["model"])
    if rm is None:
        return None
    cfg = rm.config
    if cfg.baseline:
        return (cfg.baseline, "`baseline:` in the suite") if cfg.baseline in groups else None
    if not rm.training_defense:
        return None
    if cfg.init_from and cfg.init_from in groups:
        return cfg.init_from, "its `init_from`"
    plain = [m.name for m in b.ls.models.values() if m.replica == 0 and not m.training_defense
             and m.config.arch == cfg.arch and m.name in groups]
    if len(plain) == 1:
        return plain[0], f"the one {cfg.arch} without a defense"
    return None


# ---------------------------------------------------------------------- the ranking
def compute_ranking(b: Board, replicates: int = paired.B_DEFAULT, seed: int = paired.RNG_SEED) -> Ranking:
    """Both axes, their paired comparisons and ranks, and each defended group against its baseline. Computed
    once per Board (kept on it: the summary and the ranking section read the same numbers)."""
    cached = b.__dict__.get("_ranking")
    if cached is not None and cached.replicates == replicates:
        return cached
    out = _compute(b, replicates, seed)
    b.__dict__["_ranking"] = out
    return out


def _compute(b: Board, n_boot: int, seed: int) -> Ranking:
    head = headline_budget(b.ls)
    ids = [str(i) for i in b.results.plan.attack_ids]
    sets = replica_sets(b)
    reps = group_rows(b)  # every group: one without results reads n/a on both axes, with the reason
    members = {v["name"]: sets[v["name"]] for v in reps}
    keys = [rv["clean_key"] for ms in members.values() for rv in ms]
    keys += [r["key"] for r in b.attack if _stored(r)]
    preds = _frames(b, keys)
    data = {name: _axes_of_group(b, ms, ids, head, preds) for name, ms in members.items()}
    flagged = {}
    for v in reps:
        f, k = degenerate_count(b, v), len(members[v["name"]])
        if f:
            flagged[v["name"]] = f"degenerate, {f} of {k} seeds" if k > 1 else "degenerate"

    rows: dict[str, dict[str, AxisValue]] = {name: {} for name in members}
    separated: dict[str, tuple[int, int]] = {}
    pairs: dict[str, list[PairDiff]] = {}
    comparisons: dict[str, dict[tuple[str, str], paired.Comparison]] = {}
    for axis in AXES:
        stat = AXIS_STAT[axis]
        valid = {name: d[axis].x for name, d in data.items() if d[axis].x is not None}
        shapes = {x.shape for x in valid.values()}
        draws = {s: paired.draw(s[0], s[1], n_boot, seed) for s in shapes}
        boots = {name: paired.replicates(x, stat, draws[x.shape]) for name, x in valid.items()}
        points = {name: paired.point(x, stat) for name, x in valid.items()}
        comp: dict[tuple[str, str], paired.Comparison] = {}
        for a, c in itertools.combinations(valid, 2):
            if valid[a].shape != valid[c].shape:  # other seeds or images: not paired, not compared
                continue
            hi, lo = (a, c) if points[a] >= points[c] else (c, a)
            comp[(hi, lo)] = paired.compare(valid[hi], valid[lo], stat, draws[valid[hi].shape], boots[hi], boots[lo])
        comparisons[axis] = comp
        pairs[axis] = [PairDiff(axis, x, y, c.diff, c.lo, c.hi, c.separated) for (x, y), c in comp.items()]
        separated[axis] = (sum(c.separated for c in comp.values()), len(comp))
        sep = {pair: c.separated for pair, c in comp.items()}
        ranked: dict[str, tuple[int, bool]] = {}
        offset = 0
        for is_flagged in (False, True):
            part = {n: points[n] for n in valid if (n in flagged) == is_flagged}
            ranked.update({n: (offset + r, t) for n, (r, t) in paired.ranks(part, sep).items()})
            offset += len(part)
        for name, d in data.items():
            ax = d[axis]
            k, n = len(members[name]), len(ids)
            if ax.x is None:
                rows[name][axis] = AxisValue(None, None, None, n, k, None, False, ax.cells, ax.reason or "n/a",
                                             gave_up=ax.gave_up)
                continue
            if axis == "robust":
                agg = replica_mean([Proportion(int(s.sum()), n).as_dict() for s in ax.x])
                lo, hi = agg["lo"], agg["hi"]
            else:
                lo, hi = paired.interval(boots[name])
            finite = ax.x[np.isfinite(ax.x)]
            rank, tied = ranked[name]
            rows[name][axis] = AxisValue(points[name], lo, hi, n, k, rank, tied, ax.cells, ax.reason,
                                         float(finite.max()) if finite.size else None, ax.gave_up)

    def sort_key(name: str) -> tuple:
        r = rows[name]["robust"]
        return (name in flagged, r.value is None, r.rank or 0, -(r.value or 0.0))

    order = sorted(members, key=sort_key)
    baselines: dict[str, tuple[str, str]] = {}
    diffs: list[PairDiff] = []
    for v in reps:
        found = baseline_of(b, v, set(members))
        if found is None or found[0] == v["name"]:
            continue
        baselines[v["name"]] = found
        for axis in AXES:
            xa, xb = data[v["name"]][axis].x, data[found[0]][axis].x
            if xa is None or xb is None or xa.shape != xb.shape:
                continue
            c = paired.compare(xa, xb, AXIS_STAT[axis], paired.draw(*xa.shape, n_boot, seed))
            diffs.append(PairDiff(axis, v["name"], found[0], c.diff, c.lo, c.hi, c.separated))
    return Ranking(head.text if head else "none (the suite has no bounded attack)", rows,
                   {v["name"]: v["label"] for v in reps}, order, flagged, separated, diffs,
                   head.reason if head else "", baselines, pairs, n_boot)


# ---------------------------------------------------------------------- text
def axis_text(a: AxisValue, axis: str) -> str:
    """A row's value on an axis as the leaderboard prints it, with its interval, n and seeds."""
    if a.value is None:
        return "n/a"
    tail = f" n={a.n}" + (f" x{a.seeds} seeds" if a.seeds > 1 else "")
    if a.gave_up:
        tail += " ‡" + (f" ({a.gave_up} of {a.seeds} seeds)" if a.seeds > 1 else "")
    if axis == "robust":
        return f"{100 * a.value:.1f}% [{100 * a.lo:.1f}, {100 * a.hi:.1f}]" + tail
    return f"{norm_text(a.value, a.max_finite)} [{norm_text(a.lo, a.max_finite)}, " \
           f"{norm_text(a.hi, a.max_finite)}]" + tail


def norm_text(x: float | None, max_finite: float | None = None) -> str:
    """An L2 norm; +inf (more than half the fakes unbroken) as "> max" (the largest finite one found)."""
    if x is None:
        return "n/a"
    if math.isinf(x):
        return f"> {max_finite:.2f}" if max_finite is not None else "unbroken"
    return f"{x:.2f}"


def diff_text(d: PairDiff) -> str:
    """A paired difference with its interval: percentage points (robust) or L2 (min_norm)."""
    def one(x: float) -> str:
        if math.isinf(x):
            return "+inf" if x > 0 else "-inf"
        return f"{100 * x:+.1f}" if d.axis == "robust" else f"{x:+.2f}"

    unit = " pp" if d.axis == "robust" else ""
    return f"{one(d.diff)}{unit} [{one(d.lo)}, {one(d.hi)}]"


def display_label(b: Board, rk: Ranking, name: str) -> str:
    """A group's label with its degenerate flag (a dagger, and how many seeds) as the appendix tables print it."""
    v = next((v for v in group_rows(b) if v["name"] == name), None)
    return group_label(b, v) if v is not None else rk.labels.get(name, name)
