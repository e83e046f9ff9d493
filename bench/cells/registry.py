"""Cell kinds: one compute function per kind (registered by decorator), the record a cell produces, and where
each built-in kind's compute function lives. Kinds and their keys are declared in `bench.cells.keys`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.plugins.registry import Registry
from bench.results.store import Predictions
from bench.sections import section_of

if TYPE_CHECKING:  # annotations only: the context imports the plan, which the kinds' modules import too
    from bench.cells.context import RunContext


@dataclass
class Record:
    """What a cell produces: metrics (plain data) and, optionally, per-image predictions."""

    metrics: dict[str, Any]
    predictions: Predictions | None = None


ComputeFn = Callable[[Any, "RunContext"], Record]
DoneFn = Callable[[Any, "RunContext"], bool]
CELL_KINDS: Registry[ComputeFn] = Registry("cell kind")
_DONE: dict[str, DoneFn] = {}


def computes(kind: str, done: DoneFn | None = None) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator: `fn(cell, ctx) -> Record` computes cells of `kind`; `done(cell, ctx)` says whether the
    artifacts a stored cell left (a checkpoint, adversarial examples) are still there."""

    def deco(fn: ComputeFn) -> ComputeFn:
        CELL_KINDS.register(kind, fn)
        if done is not None:
            _DONE[kind] = done
        return fn

    return deco


# The modules that register the built-in kinds; a section's kinds come from its `computes` module. Both are
# imported on first use, so reading results (reports, exports) imports none of them (nor torch).
BUILTIN_KINDS = {"model": "bench.cells.model", "clean": "bench.cells.scoring", "gradnorm": "bench.cells.scoring",
                 "attack": "bench.cells.scoring", "craft": "bench.cells.craft"}


def _load(kind: str) -> None:
    if kind in CELL_KINDS:
        return
    module = BUILTIN_KINDS.get(kind)
    if module is None:
        sec = section_of(kind)
        module = sec.computes if sec is not None else None
    if module is not None:
        importlib.import_module(module)


def is_done(cell: Any, ctx: RunContext) -> bool:
    """Whether a stored cell's artifacts are still there (always, for kinds that leave none)."""
    _load(cell.kind)
    check = _DONE.get(cell.kind)
    return True if check is None else check(cell, ctx)


def compute_fn(kind: str) -> ComputeFn:
    _load(kind)
    return CELL_KINDS.get(kind, "cell")
