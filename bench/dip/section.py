"""The paper's DIP experiment registered as a suite section: its field (`dip:`, a `DIPProtocol`), its checks, its
cell (`protocol`), the adaptive attacks through DIP (`adaptive`, rendered in Table III) and its tables
(`report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.config.work import check_work
from bench.dip.config import DIPProtocol
from bench.errors import BenchError, short
from bench.sections.registry import Section, deferred, register_section

if TYPE_CHECKING:
    from bench.suite.loaded import LoadedSuite


def check_dip(ls: LoadedSuite, load_plugins: bool) -> None:
    """The classifier is a model of the suite; DIP's iterations and the adaptive attacks' work within the caps."""
    dip = ls.suite.dip
    if dip is None:
        return
    if dip.classifier not in ls.models:
        raise BenchError("dip.classifier", f"unknown model {short(dip.classifier)}")
    check_work(dip.params.model_dump(), "dip.params")
    check_work(dip.model_dump().get("adaptive"), "dip.adaptive")


SECTION = register_section(Section(
    kind="dip", field="dip", schema=DIPProtocol | None, default=None, check=check_dip,
    cells=deferred("bench.dip.protocol:dip_cells"), render=deferred("bench.dip.report:dip_sections"),
    sharded="first", order=10, computes="bench.dip.protocol"))

ADAPTIVE = register_section(Section(  # rendered inside Table III (bench.dip.report)
    kind="dip-adaptive", cells=deferred("bench.dip.adaptive:adaptive_cells"), sharded="first", order=11,
    computes="bench.dip.adaptive"))
