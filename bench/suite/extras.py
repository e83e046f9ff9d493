"""Suite sections beyond the paper's Tables I and II, run after the main cells (hooks for later sections)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.runner import Runner


def run_extras(runner: Runner) -> None:
    """Run the optional sections a suite declares (cross-checks, DIP protocol)."""
    return None
