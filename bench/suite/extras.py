"""Suite sections beyond the paper's Tables I and II, run after the main cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.crosscheck.section import run_crosschecks
from bench.dip.protocol import run_dip

if TYPE_CHECKING:
    from bench.runner import Runner


def run_extras(runner: Runner) -> None:
    """Run the optional sections a suite declares: the DIP protocol and cross-checks."""
    if runner.s.dip is not None and (runner.shard is None or runner.shard[0] == 0):
        run_dip(runner)
    if runner.s.crosscheck and runner.shard is None:
        run_crosschecks(runner)
