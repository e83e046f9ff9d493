"""Randomized smoothing registered as a suite section: the `certify` cells and the bracket in the leaderboard."""

from __future__ import annotations

from bench.sections.registry import Section, register_section
from bench.smoothing.report import certified_section


# Planning and computing certify cells import torch: imported when the section plans or computes cells.
def certify_cells(ls, plan) -> list:
    from bench.smoothing.certify import certify_cells as cells  # lazy: torch

    return cells(ls, plan)


SECTION = register_section(Section(kind="certify", cells=certify_cells, render=certified_section, sharded="first",
                                   order=6, computes="bench.smoothing.certify"))  # after the minimum-norm curves (5)
