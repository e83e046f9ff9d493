"""Cross-checks: one attack from several implementations (native, ART, Foolbox, a user's), compared.

- `compare`: running the implementations on the same inputs and comparing them (`crosscheck`, the report);
- `tolerances`: what counts as agreement;
- `report`: rendering a report as text or markdown;
- `arguments` and `cli`: the `bench crosscheck` command;
- `section`: a suite's `crosscheck:` section, stored in the database and rendered into the leaderboard.

The names below are imported on first use: `compare` imports torch, and the `bench` parser imports this package.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CrosscheckReport", "Tolerances", "crosscheck", "crosscheck_records"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("bench.crosscheck.compare"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
