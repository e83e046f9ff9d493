"""The suite's `crosscheck:` section, registered: its field (a list of `CrosscheckEntry`), its checks
(`bench.crosscheck.entries`), one cell per entry (`bench.crosscheck.cells`) and its leaderboard part, in the
appendix with a brief in the main document (`bench.crosscheck.report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from bench.crosscheck.entries import CrosscheckEntry, entries
from bench.sections.registry import Section, deferred, register_section

if TYPE_CHECKING:
    from bench.suite.loaded import LoadedSuite


def check_crosscheck(ls: LoadedSuite, load_plugins: bool) -> None:
    """Each entry's model is the suite's, its parameters the attack's, its implementations the attack's."""
    if ls.suite.crosscheck:
        entries(ls.suite.crosscheck, ls.models, ls.base_dir, load_plugins=load_plugins)


SECTION = register_section(Section(
    kind="crosscheck", field="crosscheck", schema=list[CrosscheckEntry], default=Field(default_factory=list),
    check=check_crosscheck, cells=deferred("bench.crosscheck.cells:crosscheck_cells"),
    render=deferred("bench.crosscheck.report:crosscheck_section"),
    brief=deferred("bench.crosscheck.report:crosscheck_brief"), sharded="never", order=20, appendix=True,
    computes="bench.crosscheck.cells"))
