"""Optional suite sections (the DIP protocol, cross-checks): each adds cell kinds to the plan and a renderer
to the leaderboard, registered like everything else. No section touches the executor's internals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.registry import Registry

if TYPE_CHECKING:  # annotations only: sections import the plan and the report frames, which import suites
    from bench.suite.load import LoadedSuite
    from bench.suite.plan import Plan, SectionCell


@dataclass(frozen=True)
class Section:
    """`cells(ls, plan)` lists the section's cells (kind = `kind`); `render(board, out_dir, stem)` writes its
    leaderboard part from stored results; `sharded` says which shard of a `--shard` run computes them
    ("first": shard 0; "never": unsharded runs only). With `appendix`, the part goes to the leaderboard's
    appendix and `brief(board)` (when given) says in a few lines in the main document what it found. `computes`
    names the module that registers the kind's compute function (`bench.cells.registry.computes`): imported
    when a cell of the kind is first computed, so reading results needs none of it."""

    kind: str
    cells: Callable[[LoadedSuite, Plan], list[SectionCell]]
    render: Callable[[Any, Any, str], str]
    sharded: str = "first"
    order: int = 0
    appendix: bool = False
    brief: Callable[[Any], str] | None = None
    computes: str | None = None  # the module registering the compute function of `kind` (imported when needed)


SECTIONS: Registry[Section] = Registry("section")


def register_section(section: Section) -> Section:
    return SECTIONS.register(section.kind, section)


def sections() -> list[Section]:
    """The registered sections, in the order the leaderboard shows them (DIP before cross-checks)."""
    return sorted(SECTIONS.values(), key=lambda s: s.order)


def section_of(kind: str) -> Section | None:
    return SECTIONS.find(kind)


def add_section_cells(ls: LoadedSuite, plan: Plan) -> None:
    """Append every registered section's cells to the plan (after the cells they depend on)."""
    for sec in sections():
        plan.sections.extend(sec.cells(ls, plan))
