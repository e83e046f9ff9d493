"""Cell kinds: one compute function per kind, registered by decorator; the record a cell produces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.registry import Registry
from bench.store import Predictions

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


def is_done(cell: Any, ctx: RunContext) -> bool:
    """Whether a stored cell's artifacts are still there (always, for kinds that leave none)."""
    check = _DONE.get(cell.kind)
    return True if check is None else check(cell, ctx)


def compute_fn(kind: str) -> ComputeFn:
    return CELL_KINDS.get(kind, "cell")
