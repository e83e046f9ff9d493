"""Executors walk a plan's cell graph: for each cell, reuse the stored result or seed, compute and store it.

`SerialExecutor` runs cells one at a time in dependency order in this process (one progress bar over
cells; Ctrl-C loses at most the cell in flight). It is the seam other executors plug into: a cell's
inputs and outputs are keys, plain data and files under the home, so a cell can run anywhere its
context (`bench.cells.context.RunContext`) can be rebuilt.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.cells.artifacts import discard_unverified, record_files, verify_files
from bench.cells.context import RunContext
from bench.cells.registry import compute_fn, is_done
from bench.integrity import StoreDamaged
from bench.store import ResultStore
from bench.suite.replicas import replica_columns


@dataclass
class RunStats:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def deterministic_torch() -> None:
    """PyTorch's deterministic settings where they exist (a nondeterministic op warns instead of failing).
    Float rounding still differs between CPUs and thread counts: see the leaderboard header's machine line."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for deterministic GEMMs
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_everything(key: str) -> None:
    """Seed torch and numpy from a cell's key, so each cell is deterministic on its own."""
    deterministic_torch()
    seed = int(key[:8], 16)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


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


def store_cell(store: ResultStore, cell: Any, ctx: RunContext, record: Any, seconds: float, device: str,
               run_id: int) -> None:
    """Store a computed cell's result, with the digests of the files it wrote."""
    store.put(cell.key, cell.kind, cell.describe(), record.metrics, seconds, device, run_id, record.predictions,
              files=record_files(cell, ctx), **describe(cell, ctx, ctx.plan.data_key))


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


def describe(cell: Any, ctx: RunContext, data_key: str) -> dict[str, Any]:
    """The typed columns of a cell's stored row."""
    d = cell.describe()
    cols = {k: d.get(k) for k in ("model", "variant", "defense", "attack", "attack_key", "backend", "params",
                                  "threat", "source", "target", "adaptive")}
    return {**cols, **replica_columns(ctx.plan, d.get("model")), "suite": ctx.suite.name, "profile": ctx.ls.profile,
            "data_digest": data_key}


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
            discard_unverified(cell, ctx)
            seed_everything(cell.key)
            t0 = time.perf_counter()
            record = compute_fn(cell.kind)(cell, ctx)
            store_cell(store, cell, ctx, record, time.perf_counter() - t0, str(ctx.device), run_id)
            stats.computed += 1
        return stats
