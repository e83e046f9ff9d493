"""The markdown leaderboard: each section is a function from a suite's stored results (`bench.results.query`
frames) to markdown, never from memory or the data.

The reading path answers first: title and three-line header (`header`), the summary on both ranking axes with
sentences generated from it (`summary`), Table I, Table II by attack family (`families`), the optional sections
(DIP's Tables III and IV, a cross-check's verdict), the figures (`curves`, the per-budget curves), and the sanity
flags grouped by check and model (`flags`). The appendix holds the details: the suite, profile and provenance,
the defense ranking in full, every flag, the per-budget tables, gradient norms, the optional sections' full
reports and every attack cell. `bench.report.layout` checks the reading path's length and table widths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.report.board import Board, Row, none_if_missing
from bench.report.breakdown import breakdown_sections
from bench.report.controls import grid_control_rows, norm_headers, norm_texts
from bench.report.curves import figures, headline_budget
from bench.report.families import family_tables
from bench.report.figures import plot_accuracy_curves
from bench.report.flags import checks_run_text, every_flag_table, group_flags, grouped_table
from bench.report.format import compact, num, pct, prop, tabulate
from bench.report.header import provenance, title_and_header
from bench.report.marks import best_note, gave_up_note, grid_groups, grid_label, mark_best
from bench.report.ranking import axis_text, compute_ranking, diff_text, display_label
from bench.report.ranking import headline_budget as ranking_headline
from bench.report.replicas import (
    aggregate_cells,
    attack_accuracy,
    clean_auroc,
    clean_metric,
    clean_over_seeds,
    group_label,
    group_rows,
    may_be_best,
    pool_groups,
    replica_sets,
    seeds_of,
)
from bench.report.sanity import ALL_CHECKS, Flag, run_checks
from bench.report.summary import summary
from bench.results.atomic import atomic_write_text
from bench.results.query import Results
from bench.results.records import AttackMetrics, CraftMetrics, GradNormMetrics
from bench.smoothing.report import certificates

TABLE_I_COLUMNS = [
    ("accuracy", "Accuracy"),
    ("fake_precision", "Fake precision"),
    ("fake_recall", "Fake recall"),
    ("real_precision", "Real precision"),
    ("real_recall", "Real recall"),
]

# The tables' shared helpers live in bench.report.marks; these names stay for the sections written against them.
_groups = grid_groups
_group_label = grid_label
_best = mark_best
_best_note = best_note
_gave_up_note = gave_up_note


def _acc(b: Board, r: Row | None) -> tuple[dict | None, str]:
    """(accuracy for ranking, its text) of an attack cell; a cell whose attack gave up has no value to
    rank by and a double dagger after its text."""
    m = AttackMetrics.of(r["metrics"]) if r else None
    if m is None:
        return None, "n/a"
    acc = m.accuracy
    if r["craft_key"] in b.gave_up:
        return None, prop(acc) + " ‡"
    return acc, prop(acc)


# ---------------------------------------------------------------------- sections
def table_i(b: Board) -> str:
    rows, vals, eligible = [], [], []
    by_name: dict[str, list[dict | None]] = {}
    for v in group_rows(b):
        agg = clean_over_seeds(b, v)
        m = [getattr(agg, c) if agg else None for c, _ in TABLE_I_COLUMNS]
        by_name[v["name"]] = m
        vals.append(m)
        rows.append([group_label(b, v)] + [compact(x) for x in m] + [num(agg.auroc if agg else None)])
        eligible.append(may_be_best(b, v))
    for (base, dname), names in _groups(b).items():
        pooled = [pool_groups([by_name[n][j] for n in names]) for j in range(len(TABLE_I_COLUMNS))]
        aucs = [a for a in (clean_auroc(b, {"name": n}) for n in names) if a is not None]
        auc = float(np.mean(aucs)) if aucs else None
        rows.append([_group_label(b, base, dname, names)] + [compact(p) for p in pooled] + [num(auc)])
        vals.append(pooled)
        eligible.append(False)  # an average over a grid of models
    _best(rows, vals, eligible, fmt=compact)
    headers = ["Model"] + [h for _, h in TABLE_I_COLUMNS] + ["AUROC"]
    m = next((x for x in b.clean_records.values() if x), None)
    n = (f"n = {m.accuracy['n']} test images ({m.fake_recall['n']} fake, {m.real_recall['n']} real)"
         + (f" per seed, each cell the mean over {b.s.seeds} training seeds" if b.s.seeds > 1 else "")
         + "; a precision's n is the number of images called that class") if m else "no clean cell stored"
    return ("## Table I: unperturbed test images\n\n" + f"Cells: % (95% interval); {n}.\n\n"
            + tabulate(rows, headers, tablefmt="github") + "\n\n" + _best_note(b))


def grid_sections(b: Board, stem: str) -> tuple[str, list[str]]:
    """Accuracy against each attack grid (the paper's Fig. 3): (the tables, for the appendix; the figures'
    markdown, for the main document)."""
    parts, figs = [], []
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
                              and r["threat"] == threat and not r["adaptive"] and none_if_missing(r["metrics"])]
                    if founds:
                        src = src or founds[0]["source"]
                    accs.append(attack_accuracy(founds))
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
        parts.append(f"## Accuracy against {title} {axis}\n\n" + tabulate(rows, headers, tablefmt="github"))
        if b.s.report.figures and series:
            fig = b.out_dir / f"{stem}-{key}-{axis}.png"
            plot_accuracy_curves(series, axis, f"{title}: accuracy on perturbed fakes", fig)
            b.figures.append(fig)
            figs.append(f"**{title}: accuracy against {axis}** per model and threat (the paper's Fig. 3; the "
                        f"table is in the appendix).\n\n![{title} accuracy against {axis}]({fig.name})")
    return "\n\n".join(parts), figs


def figures_section(b: Board, stem: str, grid_figures: list[str]) -> str:
    if not b.s.report.figures:
        return ""
    hb = headline_budget(b)
    drawn = figures(b, stem, hb[0] if hb else None) + grid_figures
    return "## Figures\n\n" + "\n\n".join(drawn) if drawn else ""


def defense_ranking(b: Board) -> str:
    """Both ranking axes with their intervals and ranks, the separated pairs, each defended model against its
    baseline, and the per-attack cells behind the robust axis (`bench.report.ranking`)."""
    rk = compute_ranking(b)
    if not rk.rows:
        return ""
    sets = replica_sets(b)
    by_name = {v["name"]: v for v in group_rows(b)}
    k = max((a["robust"].seeds for a in rk.rows.values()), default=1)

    def rank_text(a) -> str:
        return "n/a" if a.rank is None else f"{a.rank}" + (" (tied)" if a.tied else "")

    body = []
    for name in rk.order:
        rob, mn = rk.rows[name]["robust"], rk.rows[name]["min_norm"]
        body.append([rank_text(rob), display_label(b, rk, name), prop(clean_metric(b, by_name[name], "accuracy")),
                     axis_text(rob, "robust"), rank_text(mn), axis_text(mn, "min_norm"),
                     f"{rob.cells} / {mn.cells}"])
    headers = ["Rank", "Model", "Clean accuracy (all test images)", f"Robust accuracy at {rk.headline}",
               "Rank (min-norm L2)", "Median min-norm L2", "Attack cells (robust / min-norm)"]
    seeds = f"each the mean over the {k} training seeds with its 95% interval" if k > 1 else \
        "each with its 95% interval"
    sep = "; ".join(f"{AXIS_TITLES[ax]}: {rk.separated[ax][0]} of {rk.separated[ax][1]}" for ax in rk.separated)
    missing: dict[str, list[str]] = {}
    for n, row in rk.rows.items():
        for a in row.values():
            if a.value is None and a.reason:
                missing.setdefault(a.reason, []).append(display_label(b, rk, n))
    reasons = [f"{why} ({', '.join(dict.fromkeys(who))})" for why, who in missing.items()]
    text = ("## Defense ranking\n\n"
            f"Two axes, {seeds} ([docs/intervals.md](../docs/intervals.md)):\n\n"
            f"- **Robust accuracy at {rk.headline}** (the budget: {rk.headline_reason or 'none'}). A fake counts "
            "as detected only if the model detects it unperturbed and under every bounded attack cell at this "
            "budget against it (both threat models; adaptive attacks through an evaluation-time defense "
            "included). Attacks without a budget (minimum-norm attacks, controls, check attacks) never enter it. "
            "Interval: Wilson over images and Student-t over seeds.\n"
            "- **Median minimum-norm L2**: per fake, the smallest L2 (of the stored image, as scored) among the "
            "minimum-norm attacks that fooled the model; a fake none fooled counts as unbroken (+inf: a median "
            "beyond every perturbation found reads \"> max\", the largest one found), a fake the model misses "
            "unperturbed as 0. Interval: the two-stage bootstrap (seeds, then images within each seed).\n\n"
            "Two rows are separated on an axis only when a paired bootstrap (the same images and seeds resampled "
            f"for both, {rk.replicates} replicates) gives their difference a 95% interval that excludes 0. A "
            "row's rank is 1 + the number of rows separated above it; rows sharing a rank say \"tied\". "
            f"**Separated pairs: {sep}.**\n\n"
            + tabulate(body, headers, tablefmt="github"))
    if reasons:
        text += "\n\nn/a: " + "; ".join(reasons) + "."
    if b.degenerate:
        text += ("\n\n† flagged by the degenerate-classifier check: it calls most images of one class the other "
                 "class, so its robust accuracy on fakes is not evidence of robustness; ranked last.")
    if any(a.gave_up for row in rk.rows.values() for a in row.values()):
        text += ("\n\n‡ a cell the axis reads comes from an attack that gave up (attack-left-images-unchanged) on "
                 "that many seeds: on the robust axis one attack fewer counts; a minimum-norm attack that gave up "
                 "finds no perturbation, so the median may be too high.")
    return "\n\n".join(p for p in (text, _baseline_table(b, rk), _headline_cells(b, rk, sets)) if p)


AXIS_TITLES = {"robust": "robust accuracy", "min_norm": "median minimum-norm L2"}


def _baseline_table(b: Board, rk) -> str:
    """Each defended group against its baseline: the paired difference on both axes."""
    if not rk.baselines:
        return ""
    diffs = {(d.a, d.axis): d for d in rk.baseline_diffs}
    rows = []
    for name, (base, rule) in rk.baselines.items():
        cells = []
        for axis in ("robust", "min_norm"):
            d = diffs.get((name, axis))
            cells.append("n/a" if d is None else diff_text(d) + (" separated" if d.separated else " tied"))
        rows.append([display_label(b, rk, name), f"{display_label(b, rk, base)} ({rule})", *cells])
    return ("### Did the defense help? Each defended model against its baseline\n\n"
            "The baseline of an evaluation-time defense is its base model; of a model with `baseline:` in the "
            "suite, that model; of a training-time defense, the model it was trained from (`init_from`), else the "
            "one model of the same architecture without a defense. Difference = defended - baseline, with its "
            "paired 95% bootstrap interval; \"separated\" when the interval excludes 0.\n\n"
            + tabulate(rows, ["Defended model", "Baseline", "Robust accuracy: difference",
                              "Median min-norm L2: difference"], tablefmt="github"))


def _headline_cells(b: Board, rk, sets: dict[str, list[Row]]) -> str:
    """Per group, each attack at the headline budget per threat model: the cells the robust axis combines."""
    head = ranking_headline(b.ls)
    if head is None:
        return ""
    cells = [r for r in b.attack if head.holds(r)]
    names = {("transfer", False): "black-box", ("white-box", False): "white-box",
             ("white-box", True): "adaptive (through the defense)"}
    cols = [(key, c) for key in b.attack_keys() for c in names
            if any(r["attack_key"] == key and (r["threat"], bool(r["adaptive"])) == c for r in cells)]
    if not cols:
        return ""
    rows = []
    for name in rk.order:
        texts = []
        for key, (threat, adaptive) in cols:
            per_seed = []
            for rv in sets.get(name, []):
                found = [r for r in cells if r["target"] == rv["name"] and r["attack_key"] == key
                         and r["threat"] == threat and bool(r["adaptive"]) == adaptive]
                per_seed += found[:1]  # one per seed (the first transfer source, when several)
            texts.append(aggregate_cells(b, per_seed)[1] if per_seed else "n/a")
        rows.append([display_label(b, rk, name), *texts])
    headers = ["Model"] + [f"{b.attack_title(key)} {names[c]}" for key, c in cols]
    return (f"### Robust accuracy per attack at {rk.headline}\n\nThe cells the robust axis combines per image "
            "(accuracy on the attacked fakes, mean over seeds).\n\n" + tabulate(rows, headers, tablefmt="github")
            + ("\n\n" + _gave_up_note(b) if any(r["craft_key"] in b.gave_up for r in cells) else ""))


def gradient_norms(b: Board) -> str:
    rows = []
    for v in b.variants:
        g = GradNormMetrics.of(b.gradnorms.get(v["name"]))
        if g:
            rows.append([v["label"], num(g.mean, 4), num(g.median, 4), _or_na(g.zero), _or_na(g.non_finite), g.n])
    if not rows:
        return ""
    return ("## Diagnostics: input-gradient norms\n\nMean over test images of the Frobenius norm of the "
            "logit Jacobian, sqrt(sum_i ||grad_x Z_i||^2) (lower = smoother model; what Lipschitz "
            "regularisation shrinks: eq. 7's penalty per image is lambda / (C N) times its square). A defended "
            "model's gradient goes through its defense's forward (with its declared gradient); zero or "
            "non-finite gradients fire gradient-masked.\n\n"
            + tabulate(rows, ["Model", "Mean ‖grad_x Z‖", "Median", "Zero", "Non-finite", "n"],
                       tablefmt="github"))


def _or_na(count: int | None) -> int | str:
    """A count that older rows lack (their declared default None): n/a."""
    return "n/a" if count is None else count


def _before_storage(r: Row, craft: CraftMetrics | None) -> str:
    """A white-box cell's success before storage (the craft's `success_before_storage`), else blank."""
    got = craft.success_before_storage if craft and r["source"] == r["target"] else None
    return prop(got) if got else ""


def all_cells(b: Board) -> str:
    rows = []
    for r in b.every_cell:
        who = f"{r['source']} -> {r['target']}"
        role = r.get("role") or "attack"
        label = r["label"] + ("" if r.get("storage_aware", True) or role == "control" else " (storage-unaware)")
        m = AttackMetrics.of(r["metrics"])
        if m is None:
            rows.append([label, role, r["backend"], r["threat"], who, "not run", "", "", "", "", "", "", "", ""])
            continue
        craft = CraftMetrics.of(r["craft_metrics"])
        rows.append([
            label, role, r["backend"], r["threat"], who, _acc(b, r)[1] if role == "attack" else prop(
                m.accuracy), prop(m.success_rate), _before_storage(r, craft), *norm_texts(craft, m),
            num(craft.seconds_per_image, 3) if craft else "n/a",
        ])
    headers = ["Attack", "Role", "Backend", "Threat", "Source -> target", "Accuracy on perturbed fakes",
               "Attack success rate", "Success before storage", *norm_headers(b), "Craft s/img"]
    return ("## Every attack cell\n\nSuccess rate: share of the fakes the target detected unperturbed that the "
            "attack turned into 'real', scored after storage. Success before storage (white-box rows): the share "
            "of the fakes the source detected that the attack's own float output turned 'real' on the bare "
            "detector, before 8-bit rounding and storage (an attack made through the storage is judged on the "
            "stored image, so it may claim less here and keep it after storage). L2 and Linf: the perturbation "
            "before storage (the delivered 8-bit image, "
            "within the attack's budget) and after storage (what is scored), pixel values in [0, 1]; the "
            "storage-only control shows what storage alone adds. Attacks are made through the storage unless "
            "marked storage-unaware (the paper's setting: made on the bare detector). Role: the suite's attack, a "
            "control (never ranked) or a check attack "
            "(docs/checks/, on at most `evaluation.checks.n` fakes).\n\n"
            + tabulate(rows, headers, tablefmt="github")
            + ("\n\n" + _gave_up_note(b) if b.gave_up else ""))


def _flag_groups(b: Board, flags: list[Flag]):
    """Flags grouped by (check, model group): each variant's group is its replica 0's variant."""
    group_of, seeds, labels = {}, {}, {}
    for g, members in replica_sets(b).items():
        v = members[0]
        labels[g] = v["label"]
        seeds[g] = seeds_of(b, v)
        for rv in members:
            group_of[rv["name"]] = g
    return group_flags(flags, group_of, seeds, labels)


def reruns_note(b: Board) -> str:
    """What the not-converged check reran (`evaluation.checks.longer_runs`)."""
    checks = b.s.evaluation.checks
    cfg = checks.longer_runs
    if cfg is None:
        return "not-converged reran none of the suite's attacks (`checks.longer_runs: null`)."
    where = "on replica 0 of each model only (to save time)" if cfg.replicas == "first" else "on every model"
    return (f"not-converged reran the table point of each iterative and minimum-norm attack that declares its "
            f"iterations with {cfg.steps_factor}x them, on the first {cfg.n or checks.n} attacked fakes, {where}, "
            f"made on the variant it scores.")


def sanity(b: Board, flags: list[Flag], grouped) -> str:
    if not flags:
        return (f"## Sanity checks\n\nNo flags raised ({len(ALL_CHECKS)} checks run; listed in the appendix). "
                + reruns_note(b))
    return (f"## Sanity checks\n\n{len(flags)} flag(s) in {len(grouped)} row(s): one per check and model (a check "
            "that fires on many models is one row), with the seeds it fired on and its worst instance; each is a "
            "reason to look, not a verdict. Every flag is listed in the appendix. " + reruns_note(b) + "\n\n"
            + grouped_table(grouped))


def every_flag(b: Board, flags: list[Flag]) -> str:
    head = f"## Every sanity flag\n\nChecks run: {checks_run_text()}."
    return head + ("\n\n" + every_flag_table(flags) if flags else "\n\nNo flags raised.")


APPENDIX_INTRO = ("## Appendix\n\nThe details behind the tables above: the suite, profile and provenance; the "
                  "defense ranking in full; every sanity flag; the per-budget tables; input-gradient norms; the "
                  "optional sections' full reports; every attack cell. For machines: `bench export` (one row per "
                  "cell; `--predictions` for per-image predictions).")


def render(results: Results, out_dir: Path) -> tuple[str, list[Path]]:
    """The leaderboard's markdown and the figures drawn for it (into `out_dir`)."""
    b = Board(results, Path(out_dir))
    stem = results.ls.tag
    flags = run_checks(b.every_cell, b.clean, b.gradnorms, certificates(b.results),
                       b.results.sections.to_dict("records"))
    grouped = _flag_groups(b, flags)
    grid_tables, grid_figures = grid_sections(b, stem)
    secs = results.ls.sections  # the built-in sections and the suite's plug-ins
    main = [title_and_header(b), summary(b, compute_ranking(b), grouped, len(ALL_CHECKS)), table_i(b),
            family_tables(b), breakdown_sections(b)]
    main += [sec.render(b, b.out_dir, stem) for sec in secs if not sec.appendix]
    main += [figures_section(b, stem, grid_figures), sanity(b, flags, grouped)]
    main += [sec.brief(b) for sec in secs if sec.appendix and sec.brief]
    appendix = [APPENDIX_INTRO, provenance(b), defense_ranking(b), every_flag(b, flags), grid_tables,
                gradient_norms(b)]
    appendix += [sec.render(b, b.out_dir, stem) for sec in secs if sec.appendix]
    appendix += [all_cells(b), COLUMN_GUIDE]
    return "\n\n".join(p for p in main + appendix if p) + "\n", b.figures


COLUMN_GUIDE = """## What the columns mean

- **Accuracy** (Table I): share of all test images (real and fake) classified correctly at threshold 0.5 on P(real).
- **Fake / Real precision and recall** (Table I): per class; fake recall is the detection rate on unperturbed fakes.
- **AUROC**: area under the ROC curve of P(real) against the real label.
- **Unperturbed fakes** (Table II): fake recall on the test set (all test fakes).
- **Black-box / white-box** (Table II): accuracy on the attacked test fakes after the attack (the adversary wants
  fakes scored real, so higher is more robust); black-box examples transfer from another model.
- **Robust accuracy at the headline budget** (defense ranking): per image, detected only if detected clean and
  under every bounded attack cell at that budget (controls, check attacks and unbounded attacks excluded).
- **Median min-norm L2** (defense ranking): per image, the smallest stored perturbation of a minimum-norm attack
  that fooled the model (+inf if none did, 0 if missed unperturbed); the median over images.
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
