"""Faults of the environment (a read-only folder, a full disk) as one-line errors naming the path.

The CLI turns what `environment_error` recognises into `BenchError` (exit 2); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from bench.errors import BenchError

ENVIRONMENT_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (disk full or a file-size limit)",
}
_SQLITE_FAULTS = ("readonly", "read-only", "disk is full", "unable to open database", "disk i/o error",
                  "database or disk is full", "attempt to write")


def environment_error(exc: BaseException, db_path: Path | str | None = None) -> BenchError | None:
    """A `BenchError` for an OSError or SQLite error that the machine caused, else None."""
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = exc.filename or db_path or "file system"
        return BenchError(str(where), f"cannot write here: {ENVIRONMENT_ERRNOS[exc.errno]}; free some space or "
                          "choose a writable folder (--home, --out, --db)")
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if any(s in text for s in _SQLITE_FAULTS):
            return BenchError(str(db_path or "results database"), f"cannot write the results database: {exc}; "
                              "free some space or choose a writable --home or --db")
    return None
