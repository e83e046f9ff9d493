"""Compute one cell in a process other than the driver's (a Ray worker, on this machine or another).

The worker gets plain data: a `ContextSpec` (the suite file, profile and overrides, the home, the device)
and a cell key. It rebuilds the run's context from the suite (deterministic: the same data, plan and keys as
the driver's; cached per process, so a worker that computes many cells loads the data once), computes the
cell as every executor does (`bench.cells.run.compute_cell`, seeded from its key) and returns its outcome as
plain data. It never writes the results store: the driver alone does (`bench.cells.run.store_computed`).
Artifacts (checkpoints, adversarial examples) are files under the home, which every worker must see at the
same path.
"""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import bench.cells  # noqa: F401  (registers the built-in cell kinds)
import bench.sections  # noqa: F401  (registers the optional sections' cell kinds)
from bench.cells.context import RunContext
from bench.cells.run import Computed, compute_cell
from bench.data.sources import load_data
from bench.errors import BenchError
from bench.models.device import resolve_device
from bench.sections import add_section_cells
from bench.suite.load import load_suite
from bench.suite.planner import plan_for_data


@dataclass(frozen=True)
class ContextSpec:
    """What a worker needs to rebuild a run's context: paths are absolute, so any working directory works."""

    suite_path: str
    profile: str | None
    overrides: dict[str, Any] = field(hash=False)
    home: str
    device: str = "cpu"  # "cpu" or "cuda" (the GPU the scheduler gave this worker)
    threads: int = 1  # torch intra-op threads per cell

    @classmethod
    def of(cls, ctx: RunContext, device: str, threads: int = 1) -> ContextSpec:
        return cls(str(Path(ctx.ls.path).resolve()), ctx.ls.profile, ctx.ls.overrides, str(Path(ctx.home).resolve()),
                   device, threads)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CellOutcome:
    """A cell's result (`computed`), or its error (`where`, `message`, and a traceback for unexpected ones)."""

    key: str
    computed: Computed | None = None
    device: str = ""
    host: str = ""
    pid: int = 0
    error: tuple[str, str] | None = None
    traceback: str | None = None


_CONTEXTS: dict[str, RunContext] = {}  # one per process: the last spec's context (its data, detectors)


def context_for(spec: ContextSpec) -> RunContext:
    """The run's context, rebuilt from the suite (no preflight: the driver ran it), cached in this process."""
    tag = repr(sorted(spec.as_dict().items()))
    if tag not in _CONTEXTS:
        _CONTEXTS.clear()
        ls = load_suite(Path(spec.suite_path), spec.profile, spec.overrides or None)
        train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
        plan = plan_for_data(ls, train, test)
        add_section_cells(ls, plan)
        _CONTEXTS[tag] = RunContext(ls, train, test, plan, Path(spec.home), resolve_device(spec.device), quiet=True)
    return _CONTEXTS[tag]


def compute_remote(spec: ContextSpec, key: str) -> CellOutcome:
    """Compute the cell `key` of the spec's plan; a failure is returned as the outcome's error, not raised
    (so the scheduler retries only a worker that died, never a cell that failed on its input)."""
    torch.set_num_threads(spec.threads)
    out = CellOutcome(key, host=socket.gethostname(), pid=os.getpid(), device=spec.device)
    try:
        ctx = context_for(spec)
        cell = next((c for c in ctx.plan.cells() if c.key == key), None)
        if cell is None:
            raise BenchError(spec.suite_path, f"cell {key[:12]} is not in this worker's plan: the suite, its data "
                                              "or a plug-in differs from the driver's")
        out.computed = compute_cell(cell, ctx)
        out.device = out.computed.device
    except BenchError as exc:
        out.error = (exc.where, exc.message)
    except Exception as exc:  # noqa: BLE001  (any bug in a cell fails that cell only; the driver reports it)
        out.error = ("", f"{type(exc).__name__}: {exc}")
        out.traceback = traceback.format_exc()
    return out


__all__ = ["CellOutcome", "ContextSpec", "compute_remote", "context_for"]
