"""Randomized smoothing registered as a suite section: its field (`certify:`, a `CertifyConfig`), the `certify`
cells and the bracket in the leaderboard."""

from __future__ import annotations

from pydantic import Field

from bench.sections.registry import Section, deferred, register_section
from bench.smoothing.config import CertifyConfig

SECTION = register_section(Section(
    kind="certify", field="certify", schema=CertifyConfig | None,
    default=Field(default_factory=CertifyConfig, description="certified radii of the smoothed variants (null: none)"),
    cells=deferred("bench.smoothing.certify:certify_cells"),
    render=deferred("bench.smoothing.report:certified_section"),
    sharded="first", order=6, computes="bench.smoothing.certify"))  # after the minimum-norm curves (5)
