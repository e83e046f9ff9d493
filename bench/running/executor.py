"""Executors walk a plan's cell graph: for each cell, reuse the stored result or run it (`bench.cells.run`).

`SerialExecutor` runs cells one at a time in dependency order in this process (one progress bar over
cells; Ctrl-C loses at most the cell in flight). It is the seam other executors plug into: a cell's
inputs and outputs are keys, plain data and files under the home, so a cell can run anywhere its
context (`bench.cells.context.RunContext`) can be rebuilt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from bench.cells.artifacts import verify_files
from bench.cells.context import RunContext
from bench.cells.registry import is_done
from bench.cells.run import run_cell
from bench.results.integrity import StoreDamaged
from bench.results.store import ResultStore


@dataclass
class RunStats:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def cell_done(cell: Any, ctx: RunContext, store: ResultStore, force: bool) -> bool:
    """Stored (its row as written), and its artifacts (checkpoint, adversarial examples) on disk as they were
    written (`bench.cells.artifacts`). A damaged row or cache file is reported and the cell recomputed."""
    if force:
        return False
    try:
        stored = store.get(cell.key)
    except StoreDamaged as exc:
        print(f"{exc}: recomputing it", file=sys.stderr)
        return False
    return stored is not None and is_done(cell, ctx) and verify_files(cell, ctx, stored.files)


def select_cells(cells: list, ctx: RunContext, store: ResultStore, force: bool,
                 mine: Callable[[Any], bool]) -> list:
    """The cells `mine` picks, plus the dependencies they need that are not done, in plan order."""
    by_key = {c.key: c for c in cells}
    wanted: set[str] = set()
    stack = [c.key for c in cells if mine(c)]
    while stack:
        key = stack.pop()
        if key in wanted:
            continue
        wanted.add(key)
        for dep in by_key[key].deps:
            if dep in by_key and dep not in wanted and not cell_done(by_key[dep], ctx, store, force):
                stack.append(dep)
    return [c for c in cells if c.key in wanted]


class SerialExecutor:
    """Computes cells one after another in this process."""

    def __init__(self, quiet: bool = False, force: bool = False) -> None:
        self.quiet = quiet
        self.force = force

    def run(self, cells: Iterable, ctx: RunContext, store: ResultStore, run_id: int, stats: RunStats,
            desc: str = "cells") -> RunStats:
        cells = list(cells)
        bar = tqdm(cells, desc=desc, disable=self.quiet)
        for cell in bar:
            if cell_done(cell, ctx, store, self.force):
                stats.reused += 1
                continue
            run_cell(cell, ctx, store, run_id)
            stats.computed += 1
        return stats
