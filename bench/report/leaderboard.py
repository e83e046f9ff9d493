"""The markdown leaderboard: each section is a function from a suite's stored results (`bench.results.query`
frames) to markdown, never from memory or the data.

Sections: provenance header, Table I (unperturbed), Table II (perturbed fakes, black-/white-box),
accuracy against each attack grid (table and PNG, the paper's Fig. 3), defense ranking with
worst-case robust accuracy, sanity checks, gradient-norm diagnostics, the optional sections (DIP,
cross-checks), and every cell in full.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tabulate import tabulate

from bench.atomic import atomic_write_text
from bench.metrics import Proportion, replica_mean, tied_ranks
from bench.report.breakdown import breakdown_sections
from bench.report.controls import control_columns, grid_control_rows, norm_headers, norm_texts, point_params
from bench.report.figures import plot_accuracy_curves
from bench.report.format import num, pct, prop
from bench.report.replicas import (
    aggregate_cells,
    attack_cells,
    clean_auroc,
    clean_metric,
    group_label,
    group_rows,
    pool_groups,
    replica_sets,
)
from bench.report.sanity import ALL_CHECKS, attack_gave_up, degenerate_classifier, run_checks
from bench.results.query import Results
from bench.sections import sections

TABLE_I_COLUMNS = [
    ("accuracy", "Accuracy"),
    ("fake_precision", "Fake precision"),
    ("fake_recall", "Fake recall"),
    ("real_precision", "Real precision"),
    ("real_recall", "Real recall"),
]

Row = dict[str, Any]


@dataclass
class Board:
    """A suite's results as the sections read them: the frames as row lists, and what is derived from them
    once (flags, groups). Sections are functions of a Board; they draw figures into `out_dir`."""

    results: Results
    out_dir: Path
    figures: list[Path] = field(default_factory=list)

    @property
    def ls(self):
        return self.results.ls

    @property
    def s(self):
        return self.results.ls.suite

    @cached_property
    def variants(self) -> list[Row]:
        return self.results.variants.to_dict("records")

    @cached_property
    def every_cell(self) -> list[Row]:
        """Every attack-frame row: the suite's attacks, the controls and the check attacks."""
        return self.results.attacks.to_dict("records") if len(self.results.attacks) else []

    @cached_property
    def attack(self) -> list[Row]:
        """The suite's own attack cells (controls and check attacks are never ranked or averaged)."""
        return [r for r in self.every_cell if (r.get("role") or "attack") == "attack"]

    @cached_property
    def controls(self) -> list[Row]:
        return [r for r in self.every_cell if r.get("role") == "control"]

    @cached_property
    def gradnorms(self) -> dict[str, dict | None]:
        return {v["name"]: _none(v.get("gradnorm")) for v in self.variants}

    @cached_property
    def clean(self) -> dict[str, dict | None]:
        return {v["name"]: _none(v["metrics"]) for v in self.variants}

    @cached_property
    def degenerate(self) -> frozenset[str]:
        """Variants the degenerate-classifier check flags: never marked best, labelled with a dagger."""
        return frozenset(f.model for f in degenerate_classifier(self.clean))

    @cached_property
    def gave_up(self) -> frozenset[str]:
        """Craft keys whose attack returned most of the fakes it attacked unperturbed (the
        attack-left-images-unchanged check): every cell made from them is marked with a double dagger and
        never marked best."""
        return frozenset(r["craft_key"] for r in self.attack if attack_gave_up(r))

    def attack_title(self, key: str) -> str:
        """The column title of a suite's attack entry (its declared title, with the key when titles repeat)."""
        first = next(a for a in self.ls.attacks if a.key == key)
        sharing = {a.key for a in self.ls.attacks if a.attack == first.attack}
        return first.title if len(sharing) == 1 else f"{first.title} ({key})"

    def attack_keys(self) -> list[str]:
        return list(dict.fromkeys(a.key for a in self.ls.attacks))

    def cell(self, v: Row, key: str, threat: str, in_table: bool = True, adaptive: bool = False) -> Row | None:
        """The attack cell of attack entry `key` against variant `v` under `threat` (its Table II point)."""
        for r in self.attack:
            if r["target"] != v["name"] or r["attack_key"] != key or r["threat"] != threat:
                continue
            if in_table and not r["in_table"]:
                continue
            if bool(r["adaptive"]) != adaptive:
                continue
            return r
        return None


def _none(x: Any) -> Any:
    """pandas turns a missing dict into NaN; the sections want None."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else x


def _groups(b: Board) -> dict[tuple[str, str], list[str]]:
    """Grids of training defenses: (base model, defense) -> model names (more than one)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, rm in b.ls.models.items():
        if rm.training_defense and rm.replica == 0:  # replicas are averaged inside each model's row
            out[(rm.base, rm.training_defense[0])].append(name)
    return {k: v for k, v in out.items() if len(v) > 1}


def _group_label(b: Board, base: str, dname: str, names: list[str]) -> str:
    return f"Average {b.ls.models[names[0]].config.label or base} ({dname}, {len(names)} models)"


def _acc(b: Board, r: Row | None) -> tuple[dict | None, str]:
    """(accuracy for ranking, its text) of an attack cell; a cell whose attack gave up has no value to
    rank by and a double dagger after its text."""
    if not r or not _none(r["metrics"]):
        return None, "n/a"
    acc = r["metrics"]["accuracy"]
    if r["craft_key"] in b.gave_up:
        return None, prop(acc) + " ‡"
    return acc, prop(acc)


def _gave_up_note(b: Board) -> str:
    return ("‡ the attack returned most of the fakes it attacked unperturbed (attack-left-images-unchanged: for "
            "CW-L2, kappa out of the model's reach), so the number says the attack gave up, not that the model "
            "is robust; never marked best, left out of averages." if b.gave_up else "")


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


def _best_note(b: Board) -> str:
    note = "*Best in each column (among single models)"
    if b.degenerate:
        note += ("; † marks a model the degenerate-classifier check flags (it calls most images of one class the "
                 "other class), never marked best: see Sanity checks")
    return note + ".*"


# ---------------------------------------------------------------------- sections
def header(b: Board) -> str:
    run = b.results.run
    s, ls = b.s, b.ls
    lines = [f"# Leaderboard: `{s.name}`" + (f" (profile `{ls.profile}`)" if ls.profile else "")]
    if s.description:
        lines += ["", s.description.strip()]
    lines += [""]
    if run:
        when = dt.datetime.fromtimestamp(run["finished"] or run["started"], dt.timezone.utc)
        vers = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        lines += [
            f"- Last run: {when:%Y-%m-%d %H:%M} UTC, git `{run['git_commit']}`, device `{run['device']}`, "
            f"seed {run['seed']}; {run['cells_computed']} cells computed, {run['cells_reused']} from the store.",
            f"- Versions: {vers}.",
        ]
        lines += [machine_line(run.get("machine") or {})]
    d = s.data
    lines += [
        f"- Data: `{d.source}`" + (f" at `{d.path}`" if d.path else f", n={d.n}") +
        f", {d.size}x{d.size} px, {len(b.results.plan.attack_ids)} test fakes attacked; "
        f"adversarial images stored as {s.evaluation.storage}"
        + (f" (quality {s.evaluation.jpeg_quality})" if s.evaluation.storage == "jpeg" else "") + ".",
        "- Classes: fake = 0, real = 1; AUROC scores P(real); threshold 0.5. "
        "Every accuracy: value [95% Wilson interval] n=images.",
    ]
    if s.seeds > 1:
        lines += [f"- Training seeds: every model trained {s.seeds} times (seeds {s.seed}..{s.seed + s.seeds - 1}); "
                  f"tables show the mean of the {s.seeds} seeds, its interval covering seeds and test images "
                  "([docs/intervals.md](../docs/intervals.md)); per-seed values: `bench export` (column `seed`)."]
    if ls.overrides:
        dumped = yaml.safe_dump(ls.overrides, sort_keys=False).strip()
        lines += ["", f"Profile `{ls.profile}` overrides the suite with:", "", "```yaml", dumped, "```"]
    if b.results.missing:
        lines += ["", f"> {b.results.missing} cells of this suite have no result in the store yet: run `bench run`."]
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    """The header's line on what makes numbers machine-dependent (`bench.provenance.machine`)."""
    if not m:
        return ("- Machine-dependent: this run stored no machine description (made before it was recorded); "
                "numbers reproduce exactly only on the same CPU, thread count and package versions.")
    return (f"- Machine-dependent: CPU {m.get('cpu', 'unknown')} ({m.get('cpu_capability', '?')}), torch threads "
            f"{m.get('torch_threads', '?')}, torch {m.get('torch', '?')}, BLAS {m.get('blas', '?')}; numbers "
            "reproduce exactly only on the same machine and thread count (float rounding differs between CPUs "
            "and thread counts, and training amplifies it; deterministic algorithms are on where torch has them).")


def table_i(b: Board) -> str:
    rows, vals = [], []
    by_name: dict[str, list[dict | None]] = {}
    for v in group_rows(b):
        m = [clean_metric(b, v, c) for c, _ in TABLE_I_COLUMNS]
        by_name[v["name"]] = m
        vals.append(m)
        rows.append([group_label(b, v)] + [prop(x) for x in m] + [num(clean_auroc(b, v))])
    for (base, dname), names in _groups(b).items():
        pooled = [pool_groups([by_name[n][j] for n in names]) for j in range(len(TABLE_I_COLUMNS))]
        aucs = [a for a in (clean_auroc(b, {"name": n}) for n in names) if a is not None]
        auc = float(np.mean(aucs)) if aucs else None
        rows.append([_group_label(b, base, dname, names)] + [prop(p) for p in pooled] + [num(auc)])
        vals.append(pooled)
    _best(rows, vals)
    headers = ["Model"] + [h for _, h in TABLE_I_COLUMNS] + ["AUROC"]
    return "## Table I: unperturbed test images\n\n" + tabulate(rows, headers, tablefmt="github") + \
        "\n\n" + _best_note(b)


def table_ii(b: Board) -> str:
    keys = b.attack_keys()
    ctl = control_columns(b)  # storage only after the unperturbed fakes; noise after each L-inf white-box column
    headers = ["Model", "Unperturbed fakes"] + (["Storage only (control)"] if ctl.storage else [])
    for k in keys:
        headers += [f"{b.attack_title(k)} black-box", f"{b.attack_title(k)} white-box"]
        headers += [f"{b.attack_title(k)} white-box: noise at eps {e:g} (control)" for e in ctl.noise.get(k, [])]
    rows, vals = [], []
    per_variant: dict[str, list[dict | None]] = {}
    for v in group_rows(b):
        cols: list[dict | None] = [clean_metric(b, v, "fake_recall")]
        texts = [prop(cols[0])]
        if ctl.storage:  # controls are shown, never marked best (None in the values _best compares)
            cols.append(None)
            texts.append(prop(ctl.value(v, "storage")))
        for k in keys:
            for threat in ("transfer", "white-box"):
                acc, text = aggregate_cells(b, attack_cells(b, v, k, threat))
                cols.append(acc)
                texts.append(text)
            for e in ctl.noise.get(k, []):
                cols.append(None)
                texts.append(prop(ctl.value(v, "noise", e)))
        per_variant[v["name"]] = cols
        rows.append([group_label(b, v)] + texts)
        vals.append(cols)
    for (base, dname), names in _groups(b).items():
        pooled = [pool_groups([per_variant[n][j] for n in names]) for j in range(len(headers) - 1)]
        rows.append([_group_label(b, base, dname, names)] + [prop(p) if p else "" for p in pooled])
        vals.append(pooled)
    _best(rows, vals)
    sources = sorted({f"{r['source']} -> {r['target']}" for r in b.attack if r["threat"] == "transfer"})
    note = ("Black-box = transfer: examples made on the source model, scored on the target"
            + (f" ({', '.join(sources)})" if sources else " (none declared)") + ". "
            "White-box examples are made on the scored model itself (for a defended model: on its undefended "
            "base, then passed through the defense, as in the paper). Controls (never ranked or marked best): "
            "storage only = the clean attacked fakes through the suite's storage; noise = uniform random sign "
            "noise of the attack's L-inf budget (seeded), both scored on the model. Attack parameters, as the "
            "backend ran them: " + "; ".join(f"{a.key}: {a.backend}, {point_params(b, a)}"
                                               for a in b.ls.attacks if a.in_table) + ".")
    gave_up = _gave_up_note(b)
    return "## Table II: accuracy on perturbed fake test images\n\n" + \
        tabulate(rows, headers, tablefmt="github") + "\n\n" + _best_note(b) + "\n\n" + \
        (gave_up + "\n\n" if gave_up else "") + note


def grid_sections(b: Board, stem: str) -> str:
    parts = []
    for key in b.attack_keys():
        points = [a for a in b.ls.attacks if a.key == key]
        if len(points) < 2 or len(points[0].varying) != 1:
            continue
        axis = points[0].varying[0]
        values = [p.params[axis] for p in points]
        series: dict[str, tuple[list, list, list, list]] = {}
        rows = []
        sets = replica_sets(b)
        for v in group_rows(b):
            for threat in ("white-box", "transfer"):
                accs = []
                src = None
                for p in points:
                    founds = [r for rv in sets[v["name"]] for r in b.attack
                              if r["attack_key"] == p.key and r["params"] == p.params and r["target"] == rv["name"]
                              and r["threat"] == threat and not r["adaptive"] and _none(r["metrics"])]
                    if founds:
                        src = src or founds[0]["source"]
                    accs.append(replica_mean([r["metrics"]["accuracy"] for r in founds]) if founds else None)
                if all(a is None for a in accs):
                    continue
                name = f"{v['label']} ({threat}" + (f" from {src})" if threat == "transfer" else ")")
                rows.append([name] + [prop(a) for a in accs])
                ok = [(x, a) for x, a in zip(values, accs, strict=True) if a]
                series[name] = ([x for x, _ in ok], [a["value"] for _, a in ok], [a["lo"] for _, a in ok],
                                [a["hi"] for _, a in ok])
        if not rows:
            continue
        rows += grid_control_rows(b, points[0].norm, axis, values)
        title = b.attack_title(key)
        headers = ["Model"] + [f"{axis}={x}" for x in values]
        text = f"## Accuracy against {title} {axis}\n\n" + tabulate(rows, headers, tablefmt="github")
        if b.s.report.figures and series:
            fig = b.out_dir / f"{stem}-{key}-{axis}.png"
            plot_accuracy_curves(series, axis, f"{title}: accuracy on perturbed fakes", fig)
            b.figures.append(fig)
            text += f"\n\n![{title} accuracy against {axis}]({fig.name})"
        parts.append(text)
    return "\n\n".join(parts)


def _ranking_columns(b: Board) -> list[tuple[str, bool]]:
    cols = [("transfer", False), ("white-box", False)]
    if any(d.adaptive for d in b.s.defenses.values()):
        cols.append(("white-box", True))
    return cols


def _predictions_by_cell(b: Board, keys: list[str]) -> dict[str, list[tuple[str, int, float]]]:
    frame = b.results.predictions(keys)
    out: dict[str, list[tuple[str, int, float]]] = {k: [] for k in keys}
    for k, i, lab, p in frame.itertuples(index=False):
        out[k].append((i, int(lab), float(p)))
    return out


def defense_ranking(b: Board) -> str:
    """Per evaluated model: clean accuracy, accuracy per attack cell, and per-image worst case."""
    keys = b.attack_keys()
    attacked = set(b.results.plan.attack_ids)
    stored = [r for r in b.attack if _none(r["metrics"])]
    preds = _predictions_by_cell(b, [v["clean_key"] for v in b.variants if b.clean[v["name"]]]
                                 + [r["key"] for r in stored])
    rows = []
    sets = replica_sets(b)
    for v in group_rows(b):
        members = [rv for rv in sets[v["name"]] if b.clean[rv["name"]] is not None]
        if not members:
            continue
        worsts, ran = [], 0
        for rv in members:
            w, n_cells = _worst_case(b, rv, stored, preds, attacked)
            ran += n_cells
            if w is not None:
                worsts.append(w)
        worst = replica_mean(worsts) if worsts else None
        cols = [aggregate_cells(b, attack_cells(b, v, k, threat, adaptive=adaptive))[1]
                for k in keys for threat, adaptive in _ranking_columns(b)]
        flagged = any(rv["name"] in b.degenerate for rv in sets[v["name"]])
        rows.append((flagged, worst, [group_label(b, v), prop(clean_metric(b, v, "accuracy"))] + cols
                     + [prop(worst), ran]))
    rows.sort(key=lambda t: (t[0], -(t[1]["value"] if t[1] else -1)))  # flagged degenerate models last
    headers = ["Model", "Clean accuracy (all test images)"]
    names = {("transfer", False): "black-box", ("white-box", False): "white-box",
             ("white-box", True): "adaptive (through the defense)"}
    for k in keys:
        headers += [f"{b.attack_title(k)} {names[c]}" for c in _ranking_columns(b)]
    headers += ["Worst case (per image, all attacks)", "Attack cells"]
    body = [[rank] + row for rank, (_, _, row) in zip(_rank_texts(rows), rows, strict=True)]
    return ("## Defense ranking\n\nSorted by worst-case robust accuracy: a fake counts as detected only if the "
            "model classifies it as fake unperturbed and under every attack cell the suite ran against this "
            "model (all grid points, both threat models). It is not the minimum of the per-attack means. "
            "Two rows get different ranks only when their worst-case intervals are disjoint (and so is every "
            "interval above the cut from every one below it); rows that share a rank say \"tied\" "
            "(`bench.metrics.tied_ranks`, docs/intervals.md)."
            + (" Attack cells: summed over training seeds." if b.s.seeds > 1 else "") + "\n\n"
            + tabulate(body, ["Rank"] + headers, tablefmt="github")
            + ("\n\n† flagged by the degenerate-classifier check: it calls most images of one class the "
               "other class, so its robust accuracy on fakes is not evidence of robustness; ranked last."
               if b.degenerate else "")
            + ("\n\n" + _gave_up_note(b) if b.gave_up else ""))


def _worst_case(b: Board, v: Row, stored: list[Row], preds: dict, attacked: set[str]) -> tuple[dict | None, int]:
    """Per-image worst case of one variant over every stored attack cell against it: (proportion, cells)."""
    robust = {i: (lab == 0 and p < 0.5) for i, lab, p in preds[v["clean_key"]] if i in attacked}
    ran = 0
    for r in stored:
        if r["target"] != v["name"]:
            continue
        ran += 1
        for i, _, p in preds[r["key"]]:
            robust[i] = robust.get(i, False) and p < 0.5
    return (Proportion(sum(robust.values()), len(robust)).as_dict() if ran else None), ran


def _rank_texts(rows: list[tuple[bool, dict | None, list]]) -> list[str]:
    """Ranks with ties (`tied_ranks`) among unflagged rows, then among flagged ones after them."""
    out: list[str] = []
    offset = 0
    for flagged in (False, True):
        part = [w for f, w, _ in rows if f == flagged]
        intervals = [(w["lo"], w["hi"]) if w else (-1.0, -1.0) for w in part]
        out += [f"{offset + r}" + (" (tied)" if tied else "") for r, tied in tied_ranks(intervals)]
        offset += len(part)
    return out


def gradient_norms(b: Board) -> str:
    rows = []
    for v in b.variants:
        g = b.gradnorms.get(v["name"])
        if g:
            rows.append([v["label"], num(g["mean"], 4), num(g["median"], 4), g.get("zero", "n/a"),
                         g.get("non_finite", "n/a"), g["n"]])
    if not rows:
        return ""
    return ("## Diagnostics: input-gradient norms\n\nMean over test images of the Frobenius norm of the "
            "logit Jacobian, sqrt(sum_i ||grad_x Z_i||^2) (lower = smoother model; what Lipschitz "
            "regularisation shrinks: eq. 7's penalty per image is lambda / (C N) times its square). A defended "
            "model's gradient goes through its defense's forward (with its declared gradient); zero or "
            "non-finite gradients fire gradient-masked.\n\n"
            + tabulate(rows, ["Model", "Mean ||grad_x Z||", "Median", "Zero", "Non-finite", "n"],
                       tablefmt="github"))


def all_cells(b: Board) -> str:
    rows = []
    for r in b.every_cell:
        who = f"{r['source']} -> {r['target']}"
        role = r.get("role") or "attack"
        m = _none(r["metrics"])
        if m is None:
            rows.append([r["label"], role, r["backend"], r["threat"], who, "not run", "", "", "", "", "", "", ""])
            continue
        craft = _none(r["craft_metrics"])
        rows.append([
            r["label"], role, r["backend"], r["threat"], who, _acc(b, r)[1] if role == "attack" else prop(
                m["accuracy"]), prop(m["success_rate"]), *norm_texts(craft, m),
            num(craft["seconds_per_image"], 3) if craft else "n/a",
        ])
    headers = ["Attack", "Role", "Backend", "Threat", "Source -> target", "Accuracy on perturbed fakes",
               "Attack success rate", *norm_headers(b), "Craft s/img"]
    return ("## Every attack cell\n\nSuccess rate: share of the fakes the target detected unperturbed that the "
            "attack turned into 'real'. L2 and Linf: the perturbation before storage (the attack's own float "
            "output) and after storage (what is scored), pixel values in [0, 1]; the storage-only control shows "
            "what storage alone adds. Role: the suite's attack, a control (never ranked) or a check attack "
            "(docs/checks/, on at most `evaluation.checks.n` fakes).\n\n"
            + tabulate(rows, headers, tablefmt="github")
            + ("\n\n" + _gave_up_note(b) if b.gave_up else ""))


def sanity(b: Board) -> str:
    flags = run_checks(b.every_cell, b.clean, b.gradnorms, b.results.sections.to_dict("records"))
    names = ", ".join(f"[{c.__name__.replace('_', '-')}](../docs/checks/{c.__name__.replace('_', '-')}.md)"
                      for c in ALL_CHECKS)
    if not flags:
        return f"## Sanity checks\n\nNo flags raised. Checks run: {names}."
    rows = [[f.model, f"[{f.check}](../{f.doc})", f.message] for f in flags]
    return (f"## Sanity checks\n\n{len(flags)} flag(s): each is a reason to look, not a verdict. "
            f"Checks run: {names}.\n\n" + tabulate(rows, ["Model", "Check", "What fired"], tablefmt="github"))


def render(results: Results, out_dir: Path) -> tuple[str, list[Path]]:
    """The leaderboard's markdown and the figures drawn for it (into `out_dir`)."""
    b = Board(results, Path(out_dir))
    stem = results.ls.tag
    parts = [header(b), table_i(b), table_ii(b), breakdown_sections(b), grid_sections(b, stem), defense_ranking(b),
             sanity(b), gradient_norms(b)]
    parts += [sec.render(b, b.out_dir, stem) for sec in sections()]
    parts += [all_cells(b), COLUMN_GUIDE]
    return "\n\n".join(p for p in parts if p) + "\n", b.figures


COLUMN_GUIDE = """## What the columns mean

- **Accuracy** (Table I): share of all test images (real and fake) classified correctly at threshold 0.5 on P(real).
- **Fake / Real precision and recall** (Table I): per class; fake recall is the detection rate on unperturbed fakes.
- **AUROC**: area under the ROC curve of P(real) against the real label.
- **Unperturbed fakes** (Table II): fake recall on the test set (all test fakes).
- **Black-box / white-box** (Table II): accuracy on the attacked test fakes after the attack (the adversary wants
  fakes scored real, so higher is more robust); black-box examples transfer from another model.
- **Worst case**: per image, detected only if detected clean and under every attack cell (controls and check
  attacks excluded).
- **Storage only / noise** (controls): the clean attacked fakes through the suite's storage, or with random noise of
  the attack's budget; an attack should leave clearly fewer fakes detected than its controls.
- Intervals are Wilson 95% score intervals; averages over a grid of models pool their counts."""


def write_leaderboard(results: Results, out_dir: Path | None = None) -> Path:
    """Render and write `leaderboard/<suite>[-<profile>].md` atomically; returns its path."""
    out_dir = Path(out_dir or results.ls.suite.report.leaderboard_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text, _ = render(results, out_dir)
    path = out_dir / f"{results.ls.tag}.md"
    atomic_write_text(path, text)  # a unique temporary name: concurrent reports do not collide
    return path


__all__ = ["Board", "render", "write_leaderboard", "pct"]
