"""The paper's DIP experiment registered as a suite section: its cell (`protocol`), the adaptive attacks through
DIP (`adaptive`, rendered in Table III) and its tables (`report`)."""

from __future__ import annotations

from bench.dip.adaptive import adaptive_cells
from bench.dip.protocol import dip_cells
from bench.dip.report import dip_sections
from bench.sections.registry import Section, register_section

SECTION = register_section(Section(kind="dip", cells=dip_cells, render=dip_sections, sharded="first", order=10))

ADAPTIVE = register_section(Section(kind="dip-adaptive", cells=adaptive_cells, render=lambda board, out_dir, stem: "",
                                    sharded="first", order=11))  # rendered inside Table III (bench.dip.report)
