"""Running one cell, the same way under every executor: seed from its key, compute it, store its result.

`run_cell` does all three in this process (the serial executor, each shard). The Ray executor splits it where
the cell crosses processes: the driver discards unverified artifacts, a worker calls `compute_cell` (through
`bench.cells.remote`) and the driver, the store's only writer, calls `store_computed` with what came back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.cells.artifacts import discard_unverified, record_files
from bench.cells.context import RunContext
from bench.cells.registry import Record, compute_fn
from bench.results.store import ResultStore
from bench.suite.replicas import replica_columns


@dataclass
class Computed:
    """A computed cell's record, how long it took and the device it ran on (plain data: it crosses processes)."""

    record: Record
    seconds: float
    device: str


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


def compute_cell(cell: Any, ctx: RunContext) -> Computed:
    """Seed from the cell's key and compute it with its kind's function (`bench.cells.registry`), timed."""
    seed_everything(cell.key)
    t0 = time.perf_counter()
    record = compute_fn(cell.kind)(cell, ctx)
    return Computed(record, time.perf_counter() - t0, str(ctx.device))


def describe(cell: Any, ctx: RunContext) -> dict[str, Any]:
    """The typed columns of a cell's stored row."""
    d = cell.describe()
    cols = {k: d.get(k) for k in ("model", "variant", "defense", "attack", "attack_key", "backend", "params",
                                  "threat", "source", "target", "adaptive")}
    return {**cols, **replica_columns(ctx.plan, d.get("model")), "suite": ctx.suite.name, "profile": ctx.ls.profile,
            "data_digest": ctx.plan.data_key}


def store_computed(store: ResultStore, cell: Any, ctx: RunContext, done: Computed, run_id: int) -> None:
    """Store a computed cell's result, with the digests of the files it wrote."""
    store.put(cell.key, cell.kind, cell.describe(), done.record.metrics, done.seconds, done.device, run_id,
              done.record.predictions, files=record_files(cell, ctx), **describe(cell, ctx))


def run_cell(cell: Any, ctx: RunContext, store: ResultStore, run_id: int) -> Computed:
    """Compute a cell that is not done and store it: its unverified artifacts discarded first."""
    discard_unverified(cell, ctx)
    done = compute_cell(cell, ctx)
    store_computed(store, cell, ctx, done, run_id)
    return done


__all__ = ["Computed", "compute_cell", "deterministic_torch", "describe", "run_cell", "seed_everything",
           "store_computed"]
