"""The minimum-norm attacks' security-evaluation curves, a section without a field or cells: it renders stored
results only (`bench.report.security_curves`), in the appendix (per seed: the summary has the median)."""

from __future__ import annotations

from bench.sections.registry import Section, deferred, register_section

SECTION = register_section(Section(
    kind="security_curves", render=deferred("bench.report.security_curves:security_curves"), sharded="never", order=5,
    appendix=True))
