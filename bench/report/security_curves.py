"""Minimum-norm attacks as security-evaluation curves: robust accuracy against the L2 budget, per model.

A minimum-norm attack (CW-L2, FMN, DDN) returns per image the smallest perturbation it found, whatever its
size, so one accuracy says little. For each white-box cell of such an attack, this section tabulates the
robust accuracy at the suite's declared budgets (`report: {l2_budgets: [...]}`): an attacked fake counts as
detected at budget eps when the detector detects it unperturbed and either still detects the attack's
example or that example lies farther than eps (L2 of the stored example, as scored). A success whose
perturbation exceeds the largest declared budget is never counted as one; the section says how many there
were, and for an attack with a logit margin kappa (CW-L2's `confidence`) on how many fakes it was
reached. A figure draws the curves. Registered as a suite section without cells
(`bench.sections.security_curves`): it reads stored results only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.attacks.registry import margin_at
from bench.report.figures import plot_accuracy_curves
from bench.report.format import prop, tabulate
from bench.results.metrics import Proportion
from bench.results.records import AttackMetrics, CraftMetrics


def _detected(b, key: str) -> dict[str, bool]:
    """image id -> detected (P(real) < 0.5) for a stored cell's predictions."""
    frame = b.results.predictions([key])
    return {str(i): float(p) < 0.5 for i, p in zip(frame["image_id"], frame["p_real"], strict=True)}


def curve(clean: dict[str, bool], adv: dict[str, bool], l2: dict[str, float],
          budgets: list[float]) -> tuple[list[dict[str, Any]], int]:
    """(robust accuracy at each budget as a Proportion dict, successes beyond the largest budget), from per
    image id: detected unperturbed, detected under attack, L2 of the attack's example."""
    rows = [(clean.get(i, True), adv[i], float(l2[i])) for i in adv]
    out = [Proportion(sum(c and (a or d > eps) for c, a, d in rows), len(rows)).as_dict() for eps in budgets]
    beyond = sum(c and not a and d > max(budgets) for c, a, d in rows)
    return out, beyond


def security_curves(b, out_dir: Path, stem: str) -> str:
    """The section's markdown (and figure) from a `bench.report.leaderboard.Board`."""
    budgets = sorted(b.s.report.l2_budgets)
    cells = [r for r in b.attack if r["family"] == "minimum-norm" and r["threat"] == "white-box"
             and not r["adaptive"] and isinstance(r["metrics"], dict)]
    if not cells:
        return ""
    clean_key = {v["name"]: v["clean_key"] for v in b.variants}
    parts = ["## Minimum-norm attacks: robust accuracy against the L2 budget",
             "Per model (white-box), the share of attacked fakes still detected when the attacker may spend at most "
             "the given L2 (of the stored example, as scored). A success beyond the largest budget is not counted."]
    for key in dict.fromkeys(r["attack_key"] for r in cells):
        rows, series, notes = [], {}, []
        for r in (c for c in cells if c["attack_key"] == key):
            m = AttackMetrics.parse(r["metrics"])
            if m.l2_per_image is None:
                notes.append(f"{r['target_label']}: stored before per-image L2 was kept; rerun with --force")
                continue
            adv = _detected(b, r["key"])
            clean = _detected(b, clean_key[r["target"]])
            per_image = m.l2_per_image
            accs, beyond = curve(clean, adv, dict(zip(per_image["ids"], per_image["l2"], strict=True)), budgets)
            rows.append([r["target_label"], *[prop(a) for a in accs]])
            series[r["target_label"]] = (budgets, [a["value"] for a in accs], [a["lo"] for a in accs],
                                         [a["hi"] for a in accs])
            margin = margin_at(r["attack"], r["params"])
            craft = CraftMetrics.of(r["craft_metrics"])
            u = craft.unchanged if craft else None
            if margin and margin[1] and u:  # an image comes back unperturbed where no iterate reached the margin
                notes.append(f"{r['target_label']}: kappa={margin[1]:g} reached on {u['n'] - u['k']} of the {u['n']} "
                             f"fakes it detected (the others came back unperturbed)")
            if beyond:
                notes.append(f"{r['target_label']}: {beyond} of {len(adv)} fakes fooled only with L2 above "
                             f"{max(budgets):g} (not counted as successes: flagged)")
        if not rows and not notes:
            continue
        title = next(c["title"] for c in cells if c["attack_key"] == key)
        text = f"### {key} ({title})\n\n" + tabulate(rows, ["Model", *[f"L2 <= {e:g}" for e in budgets]],
                                                      tablefmt="github")
        if notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in notes)
        if b.s.report.figures and series:
            fig = Path(out_dir) / f"{stem}-{key}-l2-budget.png"
            plot_accuracy_curves(series, "L2 budget", f"{title}: security-evaluation curve", fig)
            b.figures.append(fig)
            text += f"\n\n![{title} robust accuracy against the L2 budget]({fig.name})"
        parts.append(text)
    return "\n\n".join(parts) if len(parts) > 2 else ""

