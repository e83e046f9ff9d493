"""Rendering a cross-check report, from its plain data (`CrosscheckReport.as_data()`, which the store
keeps): the implementations, pairs and verdicts tables, as text or markdown; and the `crosscheck:` section's
part of the leaderboard (`crosscheck_section`, `crosscheck_brief`), from the stored cells."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report.format import md_inline, tabulate

Data = dict[str, Any]


def _tables(report: Data, fmt: str) -> list[tuple[str, str]]:
    impl_rows = []
    for r in report["results"]:
        if not r["ok"]:
            impl_rows.append([r["name"], "ERROR", *[""] * 8])
            continue
        m = r["summary"]
        impl_rows.append(
            [
                r["name"],
                f"{m['success_rate']:.3f}",
                _f(m["mean_l2"]),
                _f(m["median_l2"]),
                _f(m["mean_linf"]),
                _f(m["median_linf"]),
                f"{m['seconds_per_image']:.4f}",
                f"{m['forward_per_image']:.1f}",
                f"{m['backward_per_image']:.1f}",
                r["forward_total"],
            ]
        )
    impl_head = [
        "implementation",
        "success",
        "mean L2",
        "median L2",
        "mean Linf",
        "median Linf",
        "s / image",
        "fwd / image",
        "bwd / image",
        "fwd total",
    ]
    pair_rows = [
        [
            p["a"],
            p["b"],
            f"{p['success_agreement']:.3f}",
            f"{p['max_abs_diff']:.3g}",
            p["n_both"],
            _share(p["a_smaller"]),
            _share(p["b_smaller"]),
            _share(p["ties"]),
        ]
        for p in report["pairs"]
    ]
    pair_head = ["A", "B", "success agreement", "max |A - B|", "both broke", "A smaller L2", "B smaller L2", "tie"]
    verdict_rows = [
        [
            v["metric"],
            v["subject"],
            v["reference"],
            _f(v["value"]),
            v["tolerance"],
            "n/a" if v["ok"] is None else ("PASS" if v["ok"] else "FAIL"),
        ]
        for v in report["verdicts"]
    ]
    for r in report["results"]:
        if not r["ok"]:
            verdict_rows.append(["runs", r["name"], "", "", "no error", "FAIL"])
    verdict_head = ["metric", "subject", "reference", "value", "tolerance", "verdict"]
    tables = [
        ("Implementations", tabulate(impl_rows, impl_head, tablefmt=fmt)),
        ("Pairs", tabulate(pair_rows, pair_head, tablefmt=fmt)),
    ]
    if report.get("grades"):
        tables.append((f"Grades (AttackBench): robust accuracy at each {report.get('norm', '')} budget, "
                       "optimality, cost over every run", _grades_table(report, fmt)))
    tables.append(("Verdicts", tabulate(verdict_rows, verdict_head, tablefmt=fmt)))
    return tables


def _grades_table(report: Data, fmt: str) -> str:
    budgets = report["budgets"]
    head = ["implementation", "optimality", *[f"{b:.4g}" for b in budgets], "fwd / image", "bwd / image",
            "s / image", "runs"]
    rows = []
    for g in report["grades"]:
        acc = [f"{a:.3f}" for _, a in g["curve"]]
        if g["runs"] == 0:  # the best curve over implementations
            rows.append([g["name"], "", *acc, "", "", "", ""])
            continue
        rows.append([g["name"], f"{g['optimality']:.3f}", *acc, f"{g['forward_per_image']:.1f}",
                     f"{g['backward_per_image']:.1f}", f"{g['seconds_per_image']:.4f}", g["runs"]])
    return tabulate(rows, head, tablefmt=fmt)


def _header(report: Data) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in report["params"].items())
    kind = "deterministic: compared image by image" if report["exact"] else "optimisation: compared by strength"
    return [
        f"crosscheck {report['attack']} ({params})",
        f"{report['n']} images, {report['clean_correct']} correctly classified before the attack; device "
        f"{report['device']}",
        f"subject {report['results'][0]['name']}; {kind}",
    ]


def _footer(report: Data) -> list[str]:
    lines = [f"tolerance {k} = {t['value']}: {t['meaning']}" for k, t in report["tolerances"].items()]
    lines += [f"error in {r['name']}: {r['error']}" for r in report["results"] if not r["ok"]]
    lines += report["notes"]
    lines.append(f"overall: {'PASS' if report['ok'] else 'FAIL'}")
    return lines


def render_text(report: Data) -> str:
    """The report as plain text tables (the command's default output)."""
    out = list(_header(report))
    for title, table in _tables(report, "simple"):
        out += ["", f"{title}:", table]
    out += [""] + _footer(report)
    return "\n".join(out)


def render_markdown(report: Data) -> str:
    """The report as markdown (`--format markdown`, `--output`, the leaderboard's cross-check section)."""
    head = _header(report)
    out = [f"### {head[0]}", "", *[f"{h}  " for h in head[1:]]]
    for title, table in _tables(report, "github"):
        out += ["", f"**{title}**", "", table]
    out += [""] + [f"- {line}" for line in _footer(report)]
    return "\n".join(out)


def _f(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}"


def _share(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def crosscheck_section(board, out_dir: Path, stem: str) -> str:
    """The stored cross-checks of a `bench.report.leaderboard.Board`, each with its verdict."""
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "crosscheck"]
    if not found:
        return ""
    parts = ["## Cross-checks of attack implementations: the reports"]
    for r in found:
        e = r["payload"]
        title = md_inline(f"### {e['attack']} on {e['model']}: "
                          f"{', '.join(Path(i).name for i in e['implementations'])}")
        if board.s.seeds > 1:  # the named model is replica 0 (bench.suite.replicas)
            title += f" (model: seed 0 of {board.s.seeds})"
        m = r["metrics"]
        if not isinstance(m, dict):
            parts.append(f"{title}\n\nNot run yet.")
            continue
        verdict = "all verdicts pass" if m["ok"] else "**disagreement: at least one verdict fails**"
        parts.append(f"{title}\n\n{verdict}\n\n{render_markdown(m['report'])}")
    return "\n\n".join(parts)


def crosscheck_brief(board) -> str:
    """One line per stored cross-check for the main document: its verdict (the full report is in the appendix)."""
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "crosscheck"]
    if not found:
        return ""
    lines = []
    for r in found:
        e, m = r["payload"], r["metrics"]
        impls = ", ".join(Path(i).name for i in e["implementations"])
        verdict = ("not run yet" if not isinstance(m, dict) else "all verdicts pass" if m["ok"]
                   else "**disagreement: at least one verdict fails**")
        lines.append(f"- {e['attack']} on {e['model']} ({impls}, {e['n']} images): {verdict}.")
    return ("## Cross-checks of attack implementations\n\n" + "\n".join(lines)
            + "\n\nThe reports (implementations, pairs, grades, verdicts) are in the appendix.")
