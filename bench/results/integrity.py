"""What the store checks before it serves anything: the database file, each stored cell, each file a cell wrote.

- **The database**: opened, its schema checked (a store missing one of its tables is damaged; only a file
  with no table at all is a new store) and `PRAGMA quick_check` run (linear in the file's size: about a
  second for a few hundred MB).
- **Each cell row** carries a SHA-256 of its content (kind, key, metrics, files and per-image predictions):
  a row whose content no longer matches, or whose JSON does not decode, is damaged. `bench run` recomputes
  it; the read-only commands refuse with one line naming the cell.
- **Each finished run** is sealed with a digest of its own row (plan, provenance) and of the digests of the
  cells it holds, so a report notices a cell that was deleted or changed after the run finished.
- **Each file** a cell wrote under the home (checkpoints, adversarial examples, their norms) is recorded with
  its SHA-256 when written and checked before a stored cell is reused (`bench.cells.artifacts`).

Random damage is what this guards against, and a user's edits; an adversary who can write the database can
also rewrite its digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from bench.errors import BenchError

TABLES = {  # the columns each table must have (stores made before newer columns gain them on open, bench.results.store)
    "runs": ("run_id", "suite", "profile", "started", "finished", "status", "plan"),
    "cells": ("cell_id", "kind", "key", "metrics", "duration_s", "device", "run_id", "created"),
    "predictions": ("cell_id", "image_id", "label", "p_real"),
}
# what a cell's digest covers of its predictions (the norms only where recorded: NULL adds nothing)
PREDICTION_DIGEST_COLUMNS = ("image_id", "label", "p_real", "l2", "l2_before")
RUN_SEAL_COLUMNS = ("suite", "profile", "started", "finished", "git_commit", "versions", "seed", "device",
                    "overrides", "cells_computed", "cells_reused", "status", "plan", "machine")
RECOVER = ("restore it from a backup, or move it aside and rerun `bench run` (it recomputes every cell, reusing "
           "the trained checkpoints under the home that verify)")


class StoreDamaged(BenchError):
    """The results database, or a row or file it refers to, is not what was written."""


def _line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def damaged_database(path: Path | str, detail: str) -> StoreDamaged:
    return StoreDamaged(str(path), f"the results database is damaged ({_line(detail)}); {RECOVER}")


def damaged_cell(path: Path | str, cell_id: str, detail: str) -> StoreDamaged:
    return StoreDamaged(str(path), f"cell {_line(cell_id, 64)[:16]} is damaged ({_line(detail)}); rerun `bench run` to "
                                   f"recompute it, or {RECOVER}")


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says the file is damaged (not a permission, a lock or a full disk)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return (name in ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FORMAT")
            or any(s in text for s in ("malformed", "not a database", "no such table", "no such column",
                                       "file is encrypted", "unsupported file format", "could not decode")))


def check_database(con: sqlite3.Connection, path: Path) -> bool:
    """Raise `StoreDamaged` unless the database passes `quick_check` and has every table with its columns.

    Returns False for a new store (no table at all), which the caller may create; True otherwise."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return False
        problems = [str(r[0]) for r in con.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise damaged_database(path, f"quick_check: {'; '.join(problems)}")
        for table, cols in TABLES.items():
            if table not in tables:
                raise damaged_database(path, f"the {table} table is missing")
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            lost = [c for c in cols if c not in have]
            if lost:
                raise damaged_database(path, f"the {table} table has no column {lost[0]}")
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and not is_damage(exc):
            raise
        raise damaged_database(path, str(exc)) from None
    return True


def cell_digest(kind: str, key: str, metrics: str, files: str | None,
                predictions: list[tuple[Any, ...]]) -> str:
    """The digest of a stored cell's content, as stored (JSON texts; predictions as rows of
    PREDICTION_DIGEST_COLUMNS, sorted). Timings, device and run are not part of it: a recomputation that gives
    the same result has the same digest."""
    h = hashlib.sha256()
    h.update(json.dumps([kind, key, metrics, files]).encode())
    for image_id, label, p_real, *norms in sorted(predictions, key=lambda r: str(r[0])):
        h.update(f"\n{image_id}\t{int(label)}\t{float(p_real).hex()}".encode())
        for v in norms:
            if v is not None:
                h.update(f"\t{float(v).hex()}".encode())
    return h.hexdigest()


VOLATILE = frozenset({"path", "seconds", "seconds_per_image", "seconds_attack"})  # where and how long, not what


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def result_digest(kind: str, key: str, metrics: str, files: str | None,
                  predictions: list[tuple[Any, ...]]) -> str:
    """The digest of what a cell computed: its key, metrics and predictions, without where its files are and
    how long it took (VOLATILE keys at any depth) and without the digests of its files (a safetensors file's
    header order varies between writes of the same weights). Two computations of one cell on one machine have
    the same result digest; a merge refuses two different ones."""
    del files
    return cell_digest(kind, key, json.dumps(_without_volatile(json.loads(metrics)), sort_keys=True), None,
                       predictions)


def run_seal(row: dict[str, Any], cells: list[tuple[str, str | None]]) -> str:
    """The digest of a finished run: its row (RUN_SEAL_COLUMNS) and (cell_id, cell digest) of its cells."""
    return hashlib.sha256(json.dumps([[row.get(c) for c in RUN_SEAL_COLUMNS], cells]).encode()).hexdigest()


_FILE_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256: a file is read once per process


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file (remembered while its size, time and inode stay the same)."""
    st = os.stat(path)
    tag = (str(Path(path).absolute()), st.st_size, st.st_mtime_ns, st.st_ino)
    if tag not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[tag] = h.hexdigest()
    return _FILE_DIGESTS[tag]
