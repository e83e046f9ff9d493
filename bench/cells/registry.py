"""Cell kinds: each declared once with its version, one compute function per kind (registered by decorator),
the record a cell produces, and `cell_key`, the one function that names a cell.

A cell's key is `cell_key(kind, *parts)`: the digest of the kind's name, its declared version and the parts
that determine its result (`bench.suite.plan` and the sections' planners build every key through it). A change
to what a kind computes bumps that kind's version (its last component) and re-keys only its own cells and the
cells whose keys hash theirs (an attack cell hashes its craft's key, every cell of a model hashes the model's).

Versions are tuples so that the keys stored before per-kind versions stay byte for byte: until then every key
hashed one global plan version (3), then, for some kinds, their own (craft 2, crosscheck 2, certify 1); the
adaptive DIP cells hashed their own (3) before the plan's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.digests import digest
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
Version = tuple[int, ...]
VERSIONS: dict[str, Version] = {}  # kind -> the version its keys hash


def declare_kind(kind: str, version: Version) -> None:
    """Declare a cell kind and the version of its meaning (bump the last component when what it computes
    changes). Declared where the kind is planned, before any key of it is built; declaring it again with
    another version is an error (two meanings for one name)."""
    known = VERSIONS.setdefault(kind, tuple(version))
    if known != tuple(version):
        raise ValueError(f"cell kind {kind!r} declared twice, with versions {known} and {tuple(version)}")


def cell_key(kind: str, *parts: Any) -> str:
    """The key of a cell of `kind` (declared) determined by `parts` (plain data, keys of the cells it reads)."""
    if kind not in VERSIONS:
        raise KeyError(f"cell kind {kind!r} is not declared (bench.cells.registry.declare_kind)")
    return digest([kind, *VERSIONS[kind], *parts])


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
declare_kind("model", (3,))
declare_kind("clean", (3,))
declare_kind("gradnorm", (3,))
# 2: APGD and Square return their best iterate; noise_l2 ignores the images its attack left unperturbed
declare_kind("craft", (3, 2))
declare_kind("attack", (3,))


def _load(kind: str) -> None:
    if kind in CELL_KINDS:
        return
    module = BUILTIN_KINDS.get(kind)
    if module is None:
        from bench.sections import section_of  # lazy: the sections import this module

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
