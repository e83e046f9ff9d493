"""The suite's `crosscheck:` section: one cell per entry (stored in the database) and its leaderboard part."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.cells.registry import Record, cell_key, computes, declare_kind
from bench.crosscheck.entries import entries
from bench.crosscheck.report import render_markdown
from bench.report.format import md_inline
from bench.sections.registry import Section, register_section
from bench.suite.load import LoadedSuite
from bench.suite.plan import Plan, SectionCell

if TYPE_CHECKING:
    from bench.cells.context import RunContext

# 2: the cell stores the report as data (rendered at report time), no longer as markdown; version 1 cells
# (the layout before) are not reused.
declare_kind("crosscheck", (3, 2))


def crosscheck_cells(ls: LoadedSuite, plan: Plan) -> list[SectionCell]:
    """One cell per entry, keyed by its settings, the model, the data and the images."""
    out = []
    for e in entries(ls.suite.crosscheck, ls.models, ls.base_dir):
        mkey = plan.models[e.model].key
        key = cell_key("crosscheck", e.model_dump(), mkey, plan.data_key, plan.attack_ids[: e.n], ls.suite.seed)
        out.append(SectionCell("crosscheck", key, (mkey,), e.model_dump()))
    return out


@computes("crosscheck")
def run_crosscheck(cell: SectionCell, ctx: RunContext) -> Record:
    from bench.crosscheck.compare import crosscheck, crosscheck_records  # lazy: torch and the toolkits

    e = cell.payload
    data = ctx.attacked.subset(range(min(e["n"], len(ctx.attacked))))
    report = crosscheck(ctx.detector(e["model"]), data.images, data.labels, e["attack"], e["params"],
                        e["implementations"], seed=int(cell.key[:8], 16))
    return Record({"ok": report.verdict_ok, "records": crosscheck_records(report), "report": report.as_data()})


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


SECTION = register_section(Section(kind="crosscheck", cells=crosscheck_cells, render=crosscheck_section,
                                   sharded="never", order=20, appendix=True, brief=crosscheck_brief,
                                   computes="bench.crosscheck.section"))
