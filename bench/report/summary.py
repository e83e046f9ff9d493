"""The leaderboard's first screen: one row per model group on both ranking axes, and sentences generated from
the same numbers (which model leads each axis, what a defense changes against its undefended baseline, what no
attack broke, what the checks doubt). Nothing here is written by hand: every number comes from the `Ranking`
(`bench.report.ranking`), the clean metrics and the grouped sanity flags."""

from __future__ import annotations

import math

from bench.report.board import Board
from bench.report.curves import headline_budget
from bench.report.families import NOT_APPLICABLE, defended, families
from bench.report.flags import FlagGroup
from bench.report.format import compact, compact_norm, tabulate
from bench.report.ranking import AxisValue, PairDiff, Ranking
from bench.report.replicas import aggregate_cells, attack_cells, clean_metric, group_rows
from bench.smoothing.report import CertifiedGroup, certified_numbers

HEADERS = ["Model", "Rank: robust", "Rank: min-norm", "Clean accuracy", "Robust accuracy", "Median min-norm L2",
           "Adaptive attack", "Flags"]
MAX_LISTED = 4
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def axis_prop(a: AxisValue | None) -> dict | None:
    """An axis value as the proportion dict the formatters read."""
    if a is None or a.value is None:
        return None
    return {"value": a.value, "lo": a.lo, "hi": a.hi, "n": a.n or 1}


def robust_text(a: AxisValue | None) -> str:
    return compact(axis_prop(a))


def norm_text(a: AxisValue | None) -> str:
    return "n/a" if a is None else compact_norm(a.value, a.lo, a.hi)


def rank_text(a: AxisValue | None) -> str:
    if a is None or a.rank is None:
        return NOT_APPLICABLE
    return f"{a.rank}" + (" (tied)" if a.tied else "")


def adaptive_cell(b: Board, v: dict, headline_norm_budget: tuple[str, float] | None) -> tuple[str, str | None]:
    """(text, attack key) of the strongest adaptive attack on a defended group: the lowest accuracy among its
    adaptive table cells at the headline budget (any adaptive cell when none is at it); the text is Table II's."""
    if not defended(v):
        return NOT_APPLICABLE, None
    found = []
    for key in b.attack_keys():
        point = next((a for a in b.ls.attacks if a.key == key and a.in_table), None)
        acc, text = aggregate_cells(b, attack_cells(b, v, key, "white-box", adaptive=True), fmt=compact)
        if acc is None or point is None:
            continue
        at = headline_norm_budget is not None and point.budget is not None and point.norm == headline_norm_budget[0] \
            and point.budget_value is not None and abs(float(point.budget_value) - headline_norm_budget[1]) < 1e-12
        found.append((not at, acc["value"], text, key))
    if not found:
        return "n/a", None
    _, _, text, key = min(found)
    return f"{text}, {b.attack_title(key)}", key


def summary_rows(b: Board, r: Ranking, groups: list[FlagGroup]) -> list[list[str]]:
    by_name = {v["name"]: v for v in group_rows(b)}
    point = headline_budget(b)
    certified = certified_numbers(b)
    rows = []
    for g in r.order:
        v = by_name.get(g)
        axes = r.rows.get(g, {})
        label = r.labels.get(g, g) + (" †" if g in r.flagged else "")
        clean = compact(clean_metric(b, v, "accuracy")) if v else "n/a"
        adaptive = adaptive_cell(b, v, point)[0] if v else "n/a"
        fired = [x for x in groups if g in x.groups]
        flags = [r.flagged[g]] if g in r.flagged else []
        if fired:
            flags.append(f"[{len(fired)} check{'s' if len(fired) > 1 else ''}](#sanity-checks)")
        rows.append([label, rank_text(axes.get("robust")), rank_text(axes.get("min_norm")), clean,
                     robust_text(axes.get("robust")), norm_text(axes.get("min_norm")) + _radius(certified.get(g)),
                     adaptive,
                     "; ".join(flags) or "none"])
    return rows


def _radius(g: CertifiedGroup | None) -> str:
    """A smoothed model's median certified L2 radius, beside its median minimum-norm L2 (the bracket)."""
    return "" if g is None else f"; certified {g.median_radius:.2f}"


def caption(b: Board, r: Ranking, adaptive: bool) -> str:
    robust = next((a["robust"] for a in r.rows.values() if a.get("robust") and a["robust"].n), None)
    n = robust.n if robust else len(b.results.plan.attack_ids)
    images = next((m.accuracy["n"] for m in b.clean_records.values() if m), None)
    seeds = (f" per seed, {b.s.seeds} training seeds (each cell their mean; the interval covers seeds and images)"
             if b.s.seeds > 1 else "")
    sep = "; ".join(f"the {'robust' if axis == 'robust' else 'minimum-norm'} axis separates {k} of {p} pairs"
                    for axis, (k, p) in r.separated.items())
    text = (f"Ranked on two axes, best first on the first: robust accuracy at {r.headline} (per attacked fake, "
            "detected unperturbed and under every bounded attack at that budget, adaptive ones included; higher is "
            "more robust) and the median minimum-norm L2 (the smallest delivered perturbation, before storage, with "
            "which any minimum-norm attack fooled the stored image of a fake; larger is more robust, ∞ when most "
            "fakes were never fooled). Two rows share a rank when the paired comparison of their per-image outcomes "
            f"does not separate them ({sep}). n = {n} attacked fakes{seeds}; clean accuracy on {images} test "
            "images. Cells: value (95% interval), accuracies in %.")
    if adaptive:
        text += " Adaptive attack: the strongest attack made through the model's evaluation-time defense."
    if certified_numbers(b):
        text += (" A smoothed model's median minimum-norm L2 is followed by its median certified L2 radius (below it "
                 "no attack can flip the smoothed prediction; the randomized-smoothing section has the bracket).")
    if r.flagged:
        text += " † flagged degenerate by a sanity check: ranked after the others."
    return text


def _who(r: Ranking, names: list[str], axis: str) -> str:
    fmt = robust_text if axis == "robust" else norm_text
    items = [f"{r.labels.get(g, g)} at {fmt(r.rows[g][axis])}" for g in names[:MAX_LISTED]]
    if len(names) > MAX_LISTED:
        items.append(f"{len(names) - MAX_LISTED} more")
    return _and(items)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def leader_sentence(r: Ranking, axis: str) -> str | None:
    """Which model leads an axis (unflagged rows), with the rows it is tied with."""
    ranked = [g for g in r.order if g not in r.flagged and (a := r.rows.get(g, {}).get(axis)) and a.rank is not None]
    if not ranked:
        return None
    top = min(r.rows[g][axis].rank for g in ranked)
    first = sorted([g for g in ranked if r.rows[g][axis].rank == top],
                   key=lambda g: -_order_value(r.rows[g][axis].value))
    lead, others = first[0], first[1:]
    what = (f"robust accuracy at {r.headline}" if axis == "robust" else "median minimum-norm L2")
    fmt = robust_text if axis == "robust" else norm_text
    text = f"On {what}, {r.labels.get(lead, lead)} ranks first with {fmt(r.rows[lead][axis])}"
    if others:
        text += f", tied with {_who(r, others, axis)}: the paired comparison does not separate them"
    return text + "."


def _order_value(x: float | None) -> float:
    return -math.inf if x is None else x


def diff_text(d: PairDiff) -> str:
    if d.axis == "robust":
        return f"{100 * d.diff:+.1f} points ({100 * d.lo:+.1f} to {100 * d.hi:+.1f})"
    return f"{d.diff:+.2f} ({d.lo:+.2f} to {d.hi:+.2f})"


def baseline_sentences(r: Ranking) -> list[str]:
    """Per defended model, what its defense changes against its undefended baseline, on each axis."""
    out = []
    pairs: dict[tuple[str, str], list[PairDiff]] = {}
    for d in r.baseline_diffs:
        pairs.setdefault((d.a, d.b), []).append(d)
    for (a, b_), diffs in pairs.items():
        parts = []
        for d in sorted(diffs, key=lambda d: d.axis != "robust"):
            what = "robust accuracy" if d.axis == "robust" else "median minimum-norm L2"
            verdict = "a difference the paired comparison separates from none" if d.separated \
                else "no difference the data can separate from none"
            parts.append(f"{what} {diff_text(d)}, {verdict}")
        out.append(f"Against its undefended baseline {r.labels.get(b_, b_)}, {r.labels.get(a, a)} changes "
                   + "; ".join(parts) + ".")
    return out


def unbroken_sentence(r: Ranking) -> str | None:
    """What no bounded attack broke at the headline budget: models that keep some fakes detected, and those whose
    every attacked fake fell."""
    rows = [(g, r.rows[g]["robust"]) for g in r.order if g not in r.flagged and r.rows.get(g, {}).get("robust")
            and r.rows[g]["robust"].value is not None]
    if not rows:
        return None
    kept = [g for g, a in rows if a.value > 0]
    fell = [g for g, a in rows if a.value == 0]
    parts = []
    if kept:
        low = min(kept, key=lambda g: r.rows[g]["robust"].value)
        if len(kept) == len(rows) and len(kept) > 1:
            which = "any unflagged model" if r.flagged else "any model"
            parts.append(f"no bounded attack broke every fake of {which} (lowest: {_who(r, [low], 'robust')})")
        else:
            parts.append(f"no bounded attack broke every fake of {_who(r, kept, 'robust')}")
    if fell:
        parts.append(f"every attacked fake of {_who(r, fell, 'robust')} fell to at least one attack")
    norm_kept = [g for g in r.order if g not in r.flagged and (a := r.rows.get(g, {}).get("min_norm"))
                 and a.value is not None and math.isinf(a.value)]
    if norm_kept:
        parts.append(f"no minimum-norm attack fooled most fakes of {_and([r.labels.get(g, g) for g in norm_kept])}")
    return f"At {r.headline}, " + "; ".join(parts) + "."


def checks_sentence(groups: list[FlagGroup], n_checks: int) -> str:
    """What the sanity checks doubt, check by check, with the models and seeds they fired on."""
    if not groups:
        return f"No sanity check fired ({n_checks} checks run)."
    by: dict[str, list[FlagGroup]] = {}
    for g in groups:
        by.setdefault(g.check, []).append(g)
    items = []
    for check, gs in by.items():
        labels = [x for g in gs for x in g.labels]
        fired, seeds = sum(g.fired for g in gs), sum(g.seeds for g in gs)
        who = _and(labels[:MAX_LISTED] + ([f"{len(labels) - MAX_LISTED} more"] if len(labels) > MAX_LISTED else []))
        items.append(f"{check} on {who}" + (f" ({fired} of {seeds} seeds)" if seeds > len(labels) else ""))
    count = NUMBERS.get(len(by), str(len(by))).capitalize()
    return (f"{count} check{'s' if len(by) > 1 else ''} fired: " + "; ".join(items)
            + ". A flag is a reason to look, not a verdict: see [Sanity checks](#sanity-checks).")


def sentences(r: Ranking, groups: list[FlagGroup], n_checks: int) -> list[str]:
    out = [leader_sentence(r, "robust"), leader_sentence(r, "min_norm")]
    out += baseline_sentences(r)
    out += [unbroken_sentence(r), checks_sentence(groups, n_checks)]
    return [s for s in out if s]


def summary(b: Board, r: Ranking, groups: list[FlagGroup], n_checks: int) -> str:
    headers = list(HEADERS)
    headers[4] = f"Robust accuracy, {r.headline}"
    rows = summary_rows(b, r, groups)
    adaptive = any(row[6] != NOT_APPLICABLE for row in rows)
    if not adaptive:  # no evaluation-time defense: no adaptive column
        headers.pop(6)
        rows = [row[:6] + row[7:] for row in rows]
    text = ("## Summary\n\n" + tabulate(rows, headers, tablefmt="github", disable_numparse=True) + "\n\n"
            + caption(b, r, adaptive) + "\n\n")
    text += "\n".join(f"- {s}" for s in sentences(r, groups, n_checks))
    if not families(b):
        text += "\n\nThe suite has no attack in its tables."
    return text
