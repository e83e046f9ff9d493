"""`bench merge TARGET SOURCE...`: all or nothing.

Every source is checked first (it exists, is not the target, is not given twice, and every row and run in it
verifies: `ResultStore.verify_all`); then the target (or an empty store) is copied to a temporary file
beside it, every source is merged into the copy (a cell two stores computed differently is refused, naming
the cell and both stores), and the copy replaces the target in one step. A refusal leaves the target as it
was, and no target when there was none.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from bench.errors import BenchError
from bench.results.atomic import writable_or_error
from bench.results.store import ResultStore


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_sources(target: Path, sources: list[Path]) -> None:
    """Refuse a source that is missing, a folder, the target itself or given twice; verify every source."""
    for n, src in enumerate(sources):
        if src.is_dir():
            raise BenchError(str(src), "is a folder, not a results database file")
        if not src.is_file():
            raise BenchError(str(src), "database file does not exist")
        if _same(src, target) or src.absolute() == target.absolute():
            raise BenchError(str(src), "is the merge's target: a store cannot be merged into itself")
        if any(_same(src, earlier) for earlier in sources[:n]):
            raise BenchError(str(src), "is given twice")
    for src in sources:
        store = ResultStore(src, readonly=True)
        try:
            store.verify_all()
        finally:
            store.close()


def _settle(target: Path) -> None:
    """Fold the target's write-ahead log into it, so the copy is whole and the replaced file leaves no log
    behind; refuse a target another process holds open."""
    con = sqlite3.connect(target, timeout=60)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    if Path(f"{target}-wal").exists():
        raise BenchError(str(target), "another process is using this database (a bench run?): merge when it ends")


def merge_stores(target: Path, sources: list[Path]) -> list[tuple[Path, int, int]]:
    """Merge `sources` into `target` atomically; (source, cells copied, runs copied) per source."""
    target, sources = Path(target), [Path(s) for s in sources]
    if target.is_dir():
        raise BenchError(str(target), "is a folder, not a results database file")
    writable_or_error(target.parent, "the merge's target folder")
    check_sources(target, sources)
    if target.exists():
        ResultStore(target, readonly=True).close()  # a damaged target is refused before anything is written
        _settle(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.merge.tmp")
    counts = []
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            src, dst = sqlite3.connect(target), sqlite3.connect(tmp)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
        store = ResultStore(tmp)
        try:
            origin = {r[0]: str(target) for r in store.db.execute("SELECT cell_id FROM cells")}
            for src in sources:
                cells, runs = store.merge_from(src, origin, str(src))
                counts.append((src, cells, runs))
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            store.close()
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return counts
