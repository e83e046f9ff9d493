"""The paper's DIP experiment registered as a suite section: its cell (`protocol`) and its tables (`report`)."""

from __future__ import annotations

from bench.dip.protocol import dip_cells
from bench.dip.report import dip_sections
from bench.sections.registry import Section, register_section

SECTION = register_section(Section(kind="dip", cells=dip_cells, render=dip_sections, sharded="first", order=10))
