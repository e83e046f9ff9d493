"""The leaderboard's randomized-smoothing section: per smoothed model, the certified curve under the attack curve.

At each L2 budget e (0, then the suite's `report.l2_budgets`), of the attacked fakes:

- **certified**: CERTIFY calls the stored fake "fake" with a radius of at least e (the `certify` cell). With
  probability at least 1 - alpha per image, no perturbation of the stored fake of L2 below the radius changes
  the smoothed detector's answer: a lower bound on the accuracy under any L2 attack of budget e;
- **attacked**: PREDICT calls the stored fake "fake", and an attack's stored example is still voted "fake" or
  lies farther than e from the stored fake (per attack, and the worst case over every attack and check attack
  scored on the smoothed model): an upper bound, what the attacks tried left standing.

Between the two lies what is not known; the gap is the bracket's width. `certified_numbers(board)` returns the
per-group numbers (the median certified radius, certified and attacked accuracy per budget) for other sections.
The numbers come from the store alone: the certify cells' per-image radii and the attack cells' per-image L2
from the stored clean fake and votes (`bench.smoothing.scoring`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.report.figures import plot_accuracy_curves
from bench.report.format import md_inline, num, prop, tabulate
from bench.report.replicas import replica_sets
from bench.results.metrics import Proportion, replica_mean
from bench.smoothing.stats import certified_radius, clopper_pearson_lower

Row = dict[str, Any]
ATTACK_ROLES = ("attack", "check")  # controls carry no adversarial search: not in the attacked curve


@dataclass(frozen=True)
class CertifiedGroup:
    """One smoothed model (its replicas pooled as `bench.results.metrics.replica_mean` does) in numbers."""

    name: str  # the group's variant name (replica 0's)
    label: str
    settings: dict[str, Any]  # sigma, n0, n, alpha, predict_n, predict_alpha
    budgets: list[float]  # 0, then the suite's L2 budgets
    certified: list[dict]  # per budget: certified accuracy (value, lo, hi, n, seeds)
    attacked: list[dict]  # per budget: worst case over the attack cells
    per_attack: dict[str, list[dict]] = field(default_factory=dict)  # attack label -> per budget
    median_radius: float = float("nan")  # abstentions and wrong classes count as 0; mean over replicas
    median_min_norm_l2: float | None = None  # smallest L2 a minimum-norm attack flipped at (inf: never)
    attacks: list[str] = field(default_factory=list)  # the attack cells behind `attacked`
    seeds: int = 1
    inverted: list[int] = field(default_factory=list)  # per budget: certified there, yet counted attacked (sum)

    @property
    def width(self) -> list[float]:
        """attacked - certified at each budget (the bracket's width)."""
        return [a["value"] - c["value"] for a, c in zip(self.attacked, self.certified, strict=True)]


def certify_rows(results) -> list[Row]:
    """The stored certify cells of a `bench.results.query.Results` (those with metrics)."""
    frame = results.sections
    return [r for r in frame.to_dict("records") if r["kind"] == "certify" and isinstance(r["metrics"], dict)]


def certificates(results) -> dict[str, dict[str, tuple[str, float | None]]]:
    """variant name -> image id -> (CERTIFY's class, its radius or None): what `attack-beats-certificate` reads."""
    out = {}
    for r in certify_rows(results):
        im = r["metrics"]["images"]
        out[r["payload"]["variant"]] = dict(zip(im["ids"], zip(im["class"], im["radius"], strict=True), strict=True))
    return out


def _smoothed_cells(b, variant: str, roles: tuple[str, ...]) -> list[Row]:
    return [r for r in b.every_cell if r["target"] == variant and (r.get("role") or "attack") in roles
            and isinstance(r["metrics"], dict) and "smoothed" in r["metrics"]]


def _attack_name(r: Row) -> str:
    how = ("made through the smoothing" if r["adaptive"] else "transferred" if r["threat"] == "transfer"
           else "made on the base detector")
    role = "" if (r.get("role") or "attack") == "attack" else f" ({r['role']})"
    return f"{r['label']}{role}, {how}"


def _robust(clean_ok: dict[str, bool], cell: Row, e: float) -> dict[str, bool]:
    sm = cell["metrics"]["smoothed"]
    return {i: clean_ok.get(i, False) and (v == "fake" or d > e)
            for i, d, v in zip(sm["ids"], sm["l2_from_stored"], sm["vote"], strict=True)}


def _replica(b, cert: Row) -> dict[str, Any]:
    """One replica's curves: certified, per attack and worst case, and its medians."""
    m = cert["metrics"]
    im = m["images"]
    variant = cert["payload"]["variant"]
    budgets = [c["radius"] for c in m["certified"]]
    clean_ok = {i: p == "fake" for i, p in zip(im["ids"], im["predict"], strict=True)}
    cells = _smoothed_cells(b, variant, ATTACK_ROLES)
    per_attack: dict[str, list[dict]] = {}
    worst, inverted = [], []
    for e in budgets:
        robust = dict(clean_ok)
        for c in cells:
            r = _robust(clean_ok, c, e)
            per_attack.setdefault(_attack_name(c), []).append(Proportion(sum(r.values()), len(r)).as_dict())
            for i, ok in r.items():
                robust[i] = robust.get(i, False) and ok
        worst.append(Proportion(sum(robust.values()), len(robust)).as_dict())
        inverted.append(sum(c == "fake" and r is not None and r >= e and not robust.get(i, False)
                            for i, c, r in zip(im["ids"], im["class"], im["radius"], strict=True)))
    flips: dict[str, float] = {i: (math.inf if ok else 0.0) for i, ok in clean_ok.items()}
    min_norm = [c for c in cells if c["family"] == "minimum-norm"]
    for c in min_norm:
        sm = c["metrics"]["smoothed"]
        for i, d, v in zip(sm["ids"], sm["l2_from_stored"], sm["vote"], strict=True):
            if v != "fake":
                flips[i] = min(flips.get(i, math.inf), float(d))
    return {"budgets": budgets, "certified": m["certified"], "worst": worst, "per_attack": per_attack,
            "median_radius": m["median_radius"], "attacks": [_attack_name(c) for c in cells], "inverted": inverted,
            "median_min_norm": float(np.median(list(flips.values()))) if min_norm and flips else None}


def certified_numbers(b) -> dict[str, CertifiedGroup]:
    """Per smoothed model (its group's variant name, replica 0's): the bracket in numbers (see the module doc)."""
    certs = {r["payload"]["variant"]: r for r in certify_rows(b.results)}
    out = {}
    for name, members in replica_sets(b).items():
        reps = [_replica(b, certs[v["name"]]) for v in members if v["name"] in certs]
        if not reps:
            continue
        m = certs[next(v["name"] for v in members if v["name"] in certs)]["metrics"]
        budgets = reps[0]["budgets"]
        labels = list(dict.fromkeys(k for rp in reps for k in rp["per_attack"]))
        medians = [rp["median_min_norm"] for rp in reps if rp["median_min_norm"] is not None]
        out[name] = CertifiedGroup(
            name=name, label=members[0]["label"],
            settings={k: m[k] for k in ("sigma", "n0", "n", "alpha", "predict_n", "predict_alpha")},
            budgets=budgets,
            certified=[replica_mean([rp["certified"][j] for rp in reps]) for j in range(len(budgets))],
            attacked=[replica_mean([rp["worst"][j] for rp in reps]) for j in range(len(budgets))],
            per_attack={k: [replica_mean([rp["per_attack"][k][j] for rp in reps if k in rp["per_attack"]])
                            for j in range(len(budgets))] for k in labels},
            median_radius=float(np.mean([rp["median_radius"] for rp in reps])),
            median_min_norm_l2=float(np.mean(medians)) if medians else None,
            attacks=labels, seeds=len(reps),
            inverted=[sum(rp["inverted"][j] for rp in reps) for j in range(len(budgets))])
    return out


def largest_radius(sigma: float, n: int, alpha: float) -> float:
    """The radius of n of n votes: sigma * Phi^-1(alpha^(1/n)), the most CERTIFY can give with n samples."""
    return float(certified_radius(clopper_pearson_lower(np.array([n]), n, alpha), sigma)[0])


def _l2(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "never flipped (inf)" if math.isinf(x) else num(x)


def certified_section(b, out_dir: Path, stem: str) -> str:
    """The section's markdown (and one figure per smoothed model) from a `bench.report.leaderboard.Board`."""
    groups = certified_numbers(b)
    planned = [r for r in b.results.sections.to_dict("records") if r["kind"] == "certify"]
    if not planned:
        return ""
    parts = ["## Randomized smoothing: certified accuracy under attacked accuracy (L2)"]
    if not groups:
        return parts[0] + "\n\nNot run yet: run `bench run`."
    ev = b.s.evaluation
    storage = "8-bit PNG" if ev.storage == "png" else f"JPEG q{ev.jpeg_quality}"
    parts.append(
        "Per smoothed model, over the attacked fakes, at each L2 budget: **certified** = CERTIFY (Cohen et al. "
        "2019) calls the stored fake 'fake' with a certified radius of at least the budget (a lower bound, each "
        "image's certificate failing with probability at most alpha); **attacked** = PREDICT calls the stored fake "
        "'fake' and every attack's stored example is still voted 'fake' or lies farther than the budget from the "
        f"stored fake (an upper bound). L2 is measured between stored images ({storage}), the smoothed detector's "
        "input: the certificate covers perturbations of the stored image, not of the image before storage, and "
        "says nothing about L-inf budgets beyond the L2 they imply. Abstentions count as not detected. "
        "Bracket width = attacked - certified, in percentage points: what no attack and no certificate here "
        "settles.")
    for name, g in groups.items():
        s = g.settings
        heads = ["", *["L2 = 0" if e == 0 else f"L2 <= {e:g}" for e in g.budgets]]
        rows = [[f"certified (CERTIFY n0={s['n0']}, n={s['n']}, alpha={s['alpha']:g})",
                 *[prop(c) for c in g.certified]]]
        rows += [[f"attacked: {k}", *[prop(a) for a in v]] for k, v in g.per_attack.items()]
        rows.append(["attacked: worst case over the attacks", *[prop(a) for a in g.attacked]])
        rows.append(["bracket width (points)", *[f"{100 * w:.1f}" for w in g.width]])
        seeds = f", {g.seeds} training seeds" if g.seeds > 1 else ""
        clean = (b.clean.get(name) or {}).get("abstained")
        abstain = (f" On the unperturbed test images PREDICT abstained on {prop(clean)} (Table I counts them as "
                   "wrong)." if clean else "")
        text = (f"### {md_inline(g.label)}\n\nsigma = {s['sigma']:g}; CERTIFY with n0 = {s['n0']}, n = {s['n']}, "
                "alpha = "
                f"{s['alpha']:g} (no radius above {num(largest_radius(s['sigma'], s['n'], s['alpha']))} can be "
                f"certified with n samples); PREDICT with n = {s['predict_n']}, alpha = {s['predict_alpha']:g}"
                f"{seeds}.{abstain}\n\n"
                + tabulate(rows, heads, tablefmt="github")
                + f"\n\nMedian certified radius {num(g.median_radius)} (abstentions and wrong classes count as 0) "
                f"beside the median minimum-norm L2 {_l2(g.median_min_norm_l2)} (the smallest L2 at which a "
                "minimum-norm attack's stored example was not voted 'fake'; a fake PREDICT misses counts as 0).")
        if any(g.inverted):
            where = ", ".join(f"{k} at L2 {'= 0' if e == 0 else f'<= {e:g}'}" for e, k in zip(g.budgets, g.inverted,
                                                                                                 strict=True) if k)
            text += (f"\n\nFakes certified at a budget yet counted as attacked there ({where}): PREDICT (n = "
                     f"{s['predict_n']}) abstained on the stored fake or on an example within its radius, where "
                     f"CERTIFY (n = {s['n']}) had certified 'fake'. Two Monte Carlo procedures disagree near the "
                     "smoothed detector's threshold (an abstention counts as not detected); a 'real' vote within a "
                     "radius would be the attack-beats-certificate flag. Where they count, the width is smaller, or "
                     "negative.")
        if b.s.report.figures:
            fig = Path(out_dir) / f"{stem}-{name.replace('+', '-')}-certified.png"
            series = {"certified (lower bound)": g.certified, "attacked, worst case (upper bound)": g.attacked}
            plot_accuracy_curves({k: (g.budgets, [p["value"] for p in v], [p["lo"] for p in v],
                                      [p["hi"] for p in v]) for k, v in series.items()},
                                 "L2 budget (between stored images)", f"{g.label}: certified and attacked", fig)
            b.figures.append(fig)
            text += f"\n\n![{g.label}: certified accuracy under attacked accuracy]({fig.name})"
        parts.append(text)
    return "\n\n".join(parts)
