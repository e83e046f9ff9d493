"""Randomized smoothing registered as a suite section: the `certify` cells and the bracket in the leaderboard."""

from __future__ import annotations

from bench.sections.registry import Section, register_section
from bench.smoothing.certify import certify_cells
from bench.smoothing.report import certified_section

SECTION = register_section(Section(kind="certify", cells=certify_cells, render=certified_section, sharded="first",
                                   order=6))  # right after the minimum-norm curves (order 5)
