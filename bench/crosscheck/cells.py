"""The `crosscheck` cell kind: one cell per entry of the suite's `crosscheck:` section (`bench.crosscheck.section`),
stored in the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.cells.keys import cell_key, declare_kind
from bench.cells.registry import Record, computes
from bench.crosscheck.entries import entries
from bench.suite.loaded import LoadedSuite
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
