"""The files a cell writes (or reads as its input) under the home, recorded with their SHA-256 and checked on use.

A model cell's checkpoint (trained: a cache under `HOME/checkpoints`; or the user's own file), a craft cell's
adversarial examples and their norms before storage (caches under `HOME/adversarial`). When a cell is stored,
the executor records each file's digest in the cell's row (`files`); before a stored cell is reused, each
file is checked against it. A cache that is missing, damaged or replaced is removed and its cell recomputed
(with a line saying so); a user's checkpoint that changed is refused with one line naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cells.context import RunContext
from bench.errors import BenchError
from bench.models.checkpoint import checkpoint_matches
from bench.results.integrity import file_sha256

# kind -> fn(cell, ctx) -> {role: (path, is_cache)}
ARTIFACTS: dict[str, Callable[[Any, RunContext], dict[str, tuple[Path, bool]]]] = {}


def artifacts(kind: str):
    """Decorator: `fn(cell, ctx)` names the files cells of `kind` write (or, for a user's file, read)."""

    def deco(fn):
        ARTIFACTS[kind] = fn
        return fn

    return deco


@artifacts("model")
def _model_files(mc: Any, ctx: RunContext) -> dict[str, tuple[Path, bool]]:
    cfg = mc.model.config
    if cfg.checkpoint:
        return {"checkpoint": (ctx.ls.base_dir / cfg.checkpoint, False)}
    return {"checkpoint": (ctx.checkpoint_path(mc), True)}


@artifacts("craft")
def _craft_files(craft: Any, ctx: RunContext) -> dict[str, tuple[Path, bool]]:
    return {"adversarial": (ctx.adversarial_path(craft), True), "norms": (ctx.norms_before_path(craft), True)}


def files_of(cell: Any, ctx: RunContext) -> dict[str, tuple[Path, bool]]:
    fn = ARTIFACTS.get(cell.kind)
    return fn(cell, ctx) if fn is not None else {}


def _shown(path: Path, home: Path) -> str:
    try:
        return str(Path(path).absolute().relative_to(Path(home).absolute()))
    except ValueError:
        return str(Path(path).absolute())


def record_files(cell: Any, ctx: RunContext) -> dict[str, Any] | None:
    """{role: {path, sha256, bytes}} of the files a just-computed cell wrote (None for kinds that write none)."""
    files = files_of(cell, ctx)
    if not files:
        return None
    return {role: {"path": _shown(path, ctx.home), "sha256": file_sha256(path), "bytes": path.stat().st_size}
            for role, (path, _) in files.items()}


def _problem(path: Path, recorded: Any) -> str | None:
    if not path.is_file():
        return "missing" if not path.exists() else "not a file"
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        return "no digest was recorded for it"
    if recorded.get("bytes") is not None and path.stat().st_size != recorded["bytes"]:
        return f"damaged: {path.stat().st_size} bytes, {recorded['bytes']} when it was written"
    if file_sha256(path) != recorded["sha256"]:
        return "damaged or replaced: its SHA-256 differs from the one recorded when it was written"
    return None


def verify_files(cell: Any, ctx: RunContext, recorded: dict[str, Any] | None, repair: bool = True) -> bool:
    """Whether every file a stored cell refers to is as recorded. A cache that is not is removed (with
    `repair`) and False returned, so the cell is recomputed; a user's file that changed raises `BenchError`.
    A row stored before files were recorded (`recorded` None) needs only its files to exist."""
    files = files_of(cell, ctx)
    if recorded is None:
        return all(path.is_file() for path, _ in files.values())
    for role, (path, cache) in files.items():
        why = _problem(path, recorded.get(role))
        if why is None:
            continue
        if not cache:
            raise BenchError(str(path), f"{why}; the stored results were computed from the file as it was: restore "
                                        "it, or rerun with --force to recompute them from this one")
        if why != "missing":
            print(f"{path}: {why}; {'recomputing it' if repair else 'rerun `bench run` to recompute it'}",
                  file=sys.stderr)
            if repair and path.is_file():
                path.unlink()
        return False
    return True


def discard_unverified(cell: Any, ctx: RunContext) -> None:
    """Before a cell is computed: remove a trained checkpoint it would reuse (one that outlived its store row)
    unless the checkpoint names this cell and its weights match the digest saved in it."""
    if cell.kind != "model" or cell.model.config.checkpoint:
        return
    path = ctx.checkpoint_path(cell)
    if path.is_file() and not checkpoint_matches(path, cell.key):
        print(f"{path}: not the checkpoint of this model cell, or damaged; training it again", file=sys.stderr)
        path.unlink()
