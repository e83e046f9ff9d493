"""The paper's DIP experiment registered as a suite section: its cell (`protocol`), the adaptive attacks through
DIP (`adaptive`, rendered in Table III) and its tables (`report`)."""

from __future__ import annotations

from typing import Any

from bench.sections.registry import Section, register_section


# The planning and computing modules import torch: each is imported when the section plans or computes cells.
def dip_cells(ls, plan) -> list:
    from bench.dip.protocol import dip_cells as cells  # lazy: torch

    return cells(ls, plan)


def adaptive_cells(ls, plan) -> list:
    from bench.dip.adaptive import adaptive_cells as cells  # lazy: torch

    return cells(ls, plan)


def dip_sections(board, out_dir, stem: str) -> Any:
    from bench.dip.report import dip_sections as render  # lazy: with the other two

    return render(board, out_dir, stem)


SECTION = register_section(Section(kind="dip", cells=dip_cells, render=dip_sections, sharded="first", order=10,
                                   computes="bench.dip.protocol"))

ADAPTIVE = register_section(Section(kind="dip-adaptive", cells=adaptive_cells, render=lambda board, out_dir, stem: "",
                                    sharded="first", order=11, computes="bench.dip.adaptive"))
# rendered inside Table III (bench.dip.report)
