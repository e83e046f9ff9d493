"""The markdown leaderboard, rendered from the results database (never from memory).

Sections: provenance header, Table I (unperturbed), Table II (perturbed fakes, black-/white-box),
accuracy against each attack grid (table and PNG, the paper's Fig. 3), defense ranking with
worst-case robust accuracy, gradient-norm diagnostics, and every cell in full.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml
from tabulate import tabulate

from bench.attacks.registry import get_attack
from bench.metrics import Proportion
from bench.report.figures import plot_accuracy_curves
from bench.report.format import num, pct, prop
from bench.store import CellResult, ResultStore
from bench.suite.load import LoadedSuite
from bench.suite.plan import AttackCell, Plan, Variant

TABLE_I_COLUMNS = [
    ("accuracy", "Accuracy"),
    ("fake_precision", "Fake precision"),
    ("fake_recall", "Fake recall"),
    ("real_precision", "Real precision"),
    ("real_recall", "Real recall"),
]


class Leaderboard:
    """Collects a plan's results from the store and renders them."""

    def __init__(self, ls: LoadedSuite, plan: Plan, store: ResultStore) -> None:
        self.ls = ls
        self.s = ls.suite
        self.plan = plan
        self.store = store
        self.clean: dict[str, CellResult | None] = {
            v.name: store.get(plan.clean_key(v)) for v in plan.variants.values()
        }
        self.attack: list[tuple[AttackCell, CellResult | None]] = [(c, store.get(c.key)) for c in plan.attacks]
        self.missing = sum(r is None for r in self.clean.values()) + sum(r is None for _, r in self.attack)
        self.figures: list[Path] = []

    # -------------------------------------------------------------- helpers
    def _attack_title(self, key: str) -> str:
        attack = next(a.attack for a in self.ls.attacks if a.key == key)
        title = get_attack(attack).title
        sharing = {a.key for a in self.ls.attacks if a.attack == attack}
        return title if len(sharing) == 1 else f"{title} ({key})"

    def _attack_keys(self) -> list[str]:
        return list(dict.fromkeys(a.key for a in self.ls.attacks))

    def _cell(self, v: Variant, key: str, threat: str, in_table: bool = True,
              adaptive: bool = False) -> tuple[AttackCell, CellResult | None] | None:
        for c, r in self.attack:
            if c.target.name != v.name or c.attack.key != key or c.threat != threat:
                continue
            if in_table and not c.attack.in_table:
                continue
            if (c.source.name == c.target.name and c.target.defense is not None) != adaptive:
                continue
            return c, r
        return None

    def _groups(self) -> dict[tuple[str, str], list[str]]:
        """Grids of training defenses: (base model, defense) -> model names (more than one)."""
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name, rm in self.ls.models.items():
            if rm.training_defense:
                out[(rm.base, rm.training_defense[0])].append(name)
        return {k: v for k, v in out.items() if len(v) > 1}

    @staticmethod
    def _pool(props: list[dict | None]) -> dict | None:
        ok = [p for p in props if p and p.get("n")]
        if not ok:
            return None
        return Proportion(sum(p["k"] for p in ok), sum(p["n"] for p in ok)).as_dict()

    @cached_property
    def degenerate(self) -> frozenset[str]:
        """Variants the degenerate-classifier check flags: never marked best, labelled with a dagger."""
        from bench.report.sanity import degenerate_classifier

        return frozenset(f.model for f in degenerate_classifier(self.clean))

    @cached_property
    def gave_up(self) -> frozenset[str]:
        """Craft keys whose attack returned most of the fakes it attacked unperturbed (the
        attack-left-images-unchanged check): every cell made from them is marked with a double dagger and
        never marked best."""
        from bench.report.sanity import attack_gave_up

        return frozenset(c.craft.key for c, r in self.attack if attack_gave_up(c, r))

    def _acc(self, found: tuple[AttackCell, CellResult | None] | None) -> tuple[dict | None, str]:
        """(accuracy for ranking, its text) of an attack cell; a cell whose attack gave up has no value to
        rank by and a double dagger after its text."""
        if not found or not found[1]:
            return None, "n/a"
        acc = found[1].metrics["accuracy"]
        if found[0].craft.key in self.gave_up:
            return None, prop(acc) + " ‡"
        return acc, prop(acc)

    def _gave_up_note(self) -> str:
        return ("‡ the attack returned most of the fakes it attacked unperturbed (attack-left-images-unchanged: for "
                "CW-L2, kappa out of the model's reach), so the number says the attack gave up, not that the model "
                "is robust; never marked best, left out of averages." if self.gave_up else "")

    def _label(self, v: Variant) -> str:
        return v.label + (" †" if v.name in self.degenerate else "")

    @staticmethod
    def _best(rows: list[list], values: list[list[dict | None]]) -> None:
        """Mark the best value in each column (highest accuracy) among rows that are not averages and not
        flagged degenerate (labels ending in a dagger)."""
        if not values:
            return
        eligible = [not str(r[0]).startswith("Average") and not str(r[0]).endswith("†") for r in rows]
        for j in range(len(values[0])):
            col = [(v[j]["value"] if v[j] and v[j].get("n") and ok else -1.0)
                   for v, ok in zip(values, eligible, strict=True)]
            best = max(col)
            if best < 0 or len(values) < 2 or all(c == best for c in col):
                continue
            for i, v in enumerate(values):
                if col[i] == best and eligible[i]:
                    rows[i][j + 1] = prop(v[j], mark=True)

    def _best_note(self) -> str:
        note = "*Best in each column (among single models)"
        if self.degenerate:
            note += ("; † marks a model the degenerate-classifier check flags (it calls most images of one class the "
                     "other class), never marked best: see Sanity checks")
        return note + ".*"

    # -------------------------------------------------------------- sections
    def header(self) -> str:
        run = self.store.latest_run(self.s.name, self.ls.profile)
        lines = [f"# Leaderboard: `{self.s.name}`" + (f" (profile `{self.ls.profile}`)" if self.ls.profile else "")]
        if self.s.description:
            lines += ["", self.s.description.strip()]
        lines += [""]
        if run:
            when = dt.datetime.fromtimestamp(run["finished"] or run["started"], dt.timezone.utc)
            vers = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
            lines += [
                f"- Last run: {when:%Y-%m-%d %H:%M} UTC, git `{run['git_commit']}`, device `{run['device']}`, "
                f"seed {run['seed']}; {run['cells_computed']} cells computed, {run['cells_reused']} from the store.",
                f"- Versions: {vers}.",
            ]
        d = self.s.data
        lines += [
            f"- Data: `{d.source}`" + (f" at `{d.path}`" if d.path else f", n={d.n}") +
            f", {d.size}x{d.size} px, {len(self.plan.attack_ids)} test fakes attacked; "
            f"adversarial images stored as {self.s.evaluation.storage}"
            + (f" (quality {self.s.evaluation.jpeg_quality})" if self.s.evaluation.storage == "jpeg" else "") + ".",
            "- Classes: fake = 0, real = 1; AUROC scores P(real); threshold 0.5. "
            "Every accuracy: value [95% Wilson interval] n=images.",
        ]
        if self.ls.overrides:
            dumped = yaml.safe_dump(self.ls.overrides, sort_keys=False).strip()
            lines += ["", f"Profile `{self.ls.profile}` overrides the suite with:", "", "```yaml", dumped, "```"]
        if self.missing:
            lines += ["", f"> {self.missing} cells of this suite have no result in the store yet: run `bench run`."]
        return "\n".join(lines)

    def table_i(self) -> str:
        rows, vals = [], []
        for v in self.plan.variants.values():
            r = self.clean[v.name]
            m = r.metrics if r else {}
            vals.append([m.get(c) for c, _ in TABLE_I_COLUMNS])
            rows.append([self._label(v)] + [prop(m.get(c)) for c, _ in TABLE_I_COLUMNS] + [num(m.get("auroc"))])
        for (base, dname), names in self._groups().items():
            ms = [self.clean[n].metrics for n in names if self.clean.get(n)]
            pooled = [self._pool([m.get(c) for m in ms]) for c, _ in TABLE_I_COLUMNS]
            auc = float(np.mean([m["auroc"] for m in ms])) if ms else None
            rows.append([f"Average {self.ls.models[names[0]].config.label or base} ({dname}, {len(names)} models)"]
                        + [prop(p) for p in pooled] + [num(auc)])
            vals.append(pooled)
        self._best(rows, vals)
        headers = ["Model"] + [h for _, h in TABLE_I_COLUMNS] + ["AUROC"]
        return "## Table I: unperturbed test images\n\n" + tabulate(rows, headers, tablefmt="github") + \
            "\n\n" + self._best_note()

    def table_ii(self) -> str:
        keys = self._attack_keys()
        headers = ["Model", "Unperturbed fakes"]
        for k in keys:
            headers += [f"{self._attack_title(k)} black-box", f"{self._attack_title(k)} white-box"]
        rows, vals = [], []
        per_variant: dict[str, list[dict | None]] = {}
        for v in self.plan.variants.values():
            r = self.clean[v.name]
            cols: list[dict | None] = [r.metrics.get("fake_recall") if r else None]
            texts = [prop(cols[0])]
            for k in keys:
                for threat in ("transfer", "white-box"):
                    acc, text = self._acc(self._cell(v, k, threat))
                    cols.append(acc)
                    texts.append(text)
            per_variant[v.name] = cols
            rows.append([self._label(v)] + texts)
            vals.append(cols)
        for (base, dname), names in self._groups().items():
            pooled = [self._pool([per_variant[n][j] for n in names]) for j in range(len(headers) - 1)]
            rows.append([f"Average {self.ls.models[names[0]].config.label or base} ({dname}, {len(names)} models)"]
                        + [prop(p) for p in pooled])
            vals.append(pooled)
        self._best(rows, vals)
        sources = sorted({f"{c.source.name} -> {c.target.name}" for c, _ in self.attack if c.threat == "transfer"})
        note = ("Black-box = transfer: examples made on the source model, scored on the target"
                + (f" ({', '.join(sources)})" if sources else " (none declared)") + ". "
                "White-box examples are made on the scored model itself (for a defended model: on its undefended "
                "base, then passed through the defense, as in the paper). Attack parameters: "
                + "; ".join(f"{a.key}: {a.backend}, {_params(a)}" for a in self.ls.attacks if a.in_table) + ".")
        gave_up = self._gave_up_note()
        return "## Table II: accuracy on perturbed fake test images\n\n" + \
            tabulate(rows, headers, tablefmt="github") + "\n\n" + self._best_note() + "\n\n" + \
            (gave_up + "\n\n" if gave_up else "") + note

    def grid_sections(self, out_dir: Path, stem: str) -> str:
        parts = []
        for key in self._attack_keys():
            points = [a for a in self.ls.attacks if a.key == key]
            if len(points) < 2 or len(points[0].varying) != 1:
                continue
            axis = points[0].varying[0]
            values = [getattr(p.params, axis) for p in points]
            series: dict[str, tuple[list, list, list, list]] = {}
            rows = []
            for v in self.plan.variants.values():
                for threat in ("white-box", "transfer"):
                    accs = []
                    src = None
                    for p in points:
                        found = next(((c, r) for c, r in self.attack if c.attack == p and c.target.name == v.name
                                      and c.threat == threat and not (c.source.name == v.name and v.defense)), None)
                        if found:
                            src = found[0].source.name
                        accs.append(found[1].metrics["accuracy"] if found and found[1] else None)
                    if all(a is None for a in accs):
                        continue
                    name = f"{v.label} ({threat}" + (f" from {src})" if threat == "transfer" else ")")
                    rows.append([name] + [prop(a) for a in accs])
                    ok = [(x, a) for x, a in zip(values, accs, strict=True) if a]
                    series[name] = ([x for x, _ in ok], [a["value"] for _, a in ok], [a["lo"] for _, a in ok],
                                    [a["hi"] for _, a in ok])
            if not rows:
                continue
            title = self._attack_title(key)
            headers = ["Model"] + [f"{axis}={x}" for x in values]
            text = f"## Accuracy against {title} {axis}\n\n" + tabulate(rows, headers, tablefmt="github")
            if self.s.report.figures and series:
                fig = out_dir / f"{stem}-{key}-{axis}.png"
                plot_accuracy_curves(series, axis, f"{title}: accuracy on perturbed fakes", fig)
                self.figures.append(fig)
                text += f"\n\n![{title} accuracy against {axis}]({fig.name})"
            parts.append(text)
        return "\n\n".join(parts)

    def _ranking_columns(self) -> list[tuple[str, bool]]:
        cols = [("transfer", False), ("white-box", False)]
        if any(d.adaptive for d in self.s.defenses.values()):
            cols.append(("white-box", True))
        return cols

    def defense_ranking(self) -> str:
        """Per evaluated model: clean accuracy, accuracy per attack cell, and per-image worst case."""
        keys = self._attack_keys()
        rows = []
        for v in self.plan.variants.values():
            r = self.clean[v.name]
            if r is None:
                continue
            clean_pred = self.store.predictions(self.plan.clean_key(v))
            robust = {i: (lab == 0 and p < 0.5) for i, (lab, p) in clean_pred.items() if i in set(self.plan.attack_ids)}
            cols = []
            ran = 0
            for k in keys:
                for threat, adaptive in self._ranking_columns():
                    cols.append(self._acc(self._cell(v, k, threat, adaptive=adaptive))[1])
            for c, res in self.attack:
                if c.target.name != v.name or res is None:
                    continue
                ran += 1
                for i, (_, p) in self.store.predictions(c.key).items():
                    robust[i] = robust.get(i, False) and p < 0.5
            worst = Proportion(sum(robust.values()), len(robust)).as_dict() if ran else None
            rows.append((v.name in self.degenerate, worst["value"] if worst else -1,
                         [self._label(v), prop(r.metrics["accuracy"])] + cols + [prop(worst), ran]))
        rows.sort(key=lambda t: (t[0], -t[1]))  # flagged degenerate models last
        headers = ["Model", "Clean accuracy (all test images)"]
        names = {("transfer", False): "black-box", ("white-box", False): "white-box",
                 ("white-box", True): "adaptive (through the defense)"}
        for k in keys:
            headers += [f"{self._attack_title(k)} {names[c]}" for c in self._ranking_columns()]
        headers += ["Worst case (per image, all attacks)", "Attack cells"]
        body = [[i + 1] + row for i, (_, _, row) in enumerate(rows)]
        return ("## Defense ranking\n\nSorted by worst-case robust accuracy: a fake counts as detected only if the "
                "model classifies it as fake unperturbed and under every attack cell the suite ran against this "
                "model (all grid points, both threat models). It is not the minimum of the per-attack means.\n\n"
                + tabulate(body, ["Rank"] + headers, tablefmt="github")
                + ("\n\n† flagged by the degenerate-classifier check: it calls most images of one class the "
                   "other class, so its robust accuracy on fakes is not evidence of robustness; ranked last."
                   if self.degenerate else "")
                + ("\n\n" + self._gave_up_note() if self.gave_up else ""))

    def gradient_norms(self) -> str:
        rows = []
        for name, mc in self.plan.models.items():
            r = self.store.get(self.plan.gradnorm_key(mc, self.s.evaluation.gradient_norm_images))
            if r:
                rows.append([self.ls.models[name].label, num(r.metrics["mean"], 4), num(r.metrics["median"], 4),
                             r.metrics["n"]])
        if not rows:
            return ""
        return ("## Diagnostics: input-gradient norms\n\nMean over test images of the Frobenius norm of the "
                "logit Jacobian, sqrt(sum_i ||grad_x Z_i||^2) (lower = smoother model; what Lipschitz "
                "regularisation shrinks: eq. 7's penalty per image is lambda / (C N) times its square).\n\n"
                + tabulate(rows, ["Model", "Mean ||grad_x Z||", "Median", "n"], tablefmt="github"))

    def all_cells(self) -> str:
        rows = []
        for c, r in self.attack:
            craft = self.store.get(c.craft.key)
            if r is None:
                rows.append([c.attack.label, c.attack.backend, c.threat, f"{c.source.name} -> {c.target.name}",
                             "not run", "", "", "", "", ""])
                continue
            m = r.metrics
            rows.append([
                c.attack.label, c.attack.backend, c.threat, f"{c.source.name} -> {c.target.name}",
                self._acc((c, r))[1], prop(m["success_rate"]), num(m["l2"]["mean"]), num(m["l2"]["median"]),
                num(m["linf"]["mean"], 4), num(craft.metrics["seconds_per_image"], 3) if craft else "n/a",
            ])
        headers = ["Attack", "Backend", "Threat", "Source -> target", "Accuracy on perturbed fakes",
                   "Attack success rate", "Mean L2", "Median L2", "Mean Linf", "Craft s/img"]
        return ("## Every attack cell\n\nSuccess rate: share of the fakes the target detected unperturbed that the "
                "attack turned into 'real'. L2 and Linf: perturbation after 8-bit storage, pixel values in [0, 1].\n\n"
                + tabulate(rows, headers, tablefmt="github")
                + ("\n\n" + self._gave_up_note() if self.gave_up else ""))

    def sanity(self) -> str:
        from bench.report.sanity import CHECKS, CLEAN_CHECKS, run_checks

        flags = run_checks(self.attack, self.clean)
        names = ", ".join(f"[{c.__name__.replace('_', '-')}](../docs/checks/{c.__name__.replace('_', '-')}.md)"
                          for c in CHECKS + CLEAN_CHECKS)
        if not flags:
            return f"## Sanity checks\n\nNo flags raised. Checks run: {names}."
        rows = [[f.model, f"[{f.check}](../{f.doc})", f.message] for f in flags]
        return (f"## Sanity checks\n\n{len(flags)} flag(s): each is a reason to look, not a verdict. "
                f"Checks run: {names}.\n\n" + tabulate(rows, ["Model", "Check", "What fired"], tablefmt="github"))

    def render(self, out_dir: Path) -> str:
        stem = self.ls.tag
        from bench.report.breakdown import breakdown_sections  # issue 14: per subset, per video

        parts = [self.header(), self.table_i(), self.table_ii(), breakdown_sections(self),
                 self.grid_sections(out_dir, stem),
                 self.defense_ranking(), self.sanity(), self.gradient_norms()]
        from bench.report.extras import extra_sections

        parts += extra_sections(self, out_dir, stem)
        parts += [self.all_cells(), COLUMN_GUIDE]
        return "\n\n".join(p for p in parts if p) + "\n"


COLUMN_GUIDE = """## What the columns mean

- **Accuracy** (Table I): share of all test images (real and fake) classified correctly at threshold 0.5 on P(real).
- **Fake / Real precision and recall** (Table I): per class; fake recall is the detection rate on unperturbed fakes.
- **AUROC**: area under the ROC curve of P(real) against the real label.
- **Unperturbed fakes** (Table II): fake recall on the test set (all test fakes).
- **Black-box / white-box** (Table II): accuracy on the attacked test fakes after the attack (the adversary wants
  fakes scored real, so higher is more robust); black-box examples transfer from another model.
- **Worst case**: per image, detected only if detected clean and under every attack cell.
- Intervals are Wilson 95% score intervals; averages over a grid of models pool their counts."""


def _params(a) -> str:
    return ", ".join(f"{k}={v}" for k, v in a.params.model_dump().items())


def write_leaderboard(ls: LoadedSuite, plan: Plan, store: ResultStore, out_dir: Path | None = None) -> Path:
    """Render and write `leaderboard/<suite>[-<profile>].md` atomically; returns its path."""
    out_dir = Path(out_dir or ls.suite.report.leaderboard_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = Leaderboard(ls, plan, store).render(out_dir)
    path = out_dir / f"{ls.tag}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


__all__ = ["Leaderboard", "write_leaderboard", "pct"]
