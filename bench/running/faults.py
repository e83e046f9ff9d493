"""Faults of the environment (a read-only folder, a full disk) as one-line errors naming the path.

The CLI turns what `environment_error` recognises into `BenchError` (exit 2); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from bench.errors import BenchError

PERMISSION = "permission"
FULL = "full"
ENVIRONMENT_ERRNOS = {  # errno -> (what it says, which kind of fault)
    errno.EACCES: ("permission denied", PERMISSION),
    errno.EPERM: ("operation not permitted", PERMISSION),
    errno.EROFS: ("read-only file system", PERMISSION),
    errno.ENOSPC: ("no space left on the device (disk full)", FULL),
    errno.EDQUOT: ("disk quota exceeded", FULL),
    errno.EFBIG: ("file too large (disk full or a file-size limit)", FULL),
}
WHAT_TO_DO = {
    PERMISSION: "you may not write there: choose a writable folder (--home, --out, --db) or fix its permissions",
    FULL: "the disk is full: free some space, or choose a folder on another disk (--home, --out, --db)",
}
_SQLITE_FAULTS = {  # text in SQLite's message -> kind
    "readonly": PERMISSION, "read-only": PERMISSION, "attempt to write": PERMISSION,
    "unable to open database": PERMISSION, "disk is full": FULL, "database or disk is full": FULL,
    "disk i/o error": None,
}


def environment_error(exc: BaseException, db_path: Path | str | None = None) -> BenchError | None:
    """A `BenchError` for an OSError or SQLite error that the machine caused, else None: it names the file
    written (never a temporary file) and says whether permission or space was missing."""
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        what, kind = ENVIRONMENT_ERRNOS[exc.errno]
        where = exc.filename or db_path or "file system"
        return BenchError(str(where), f"cannot write it: {what}; {WHAT_TO_DO[kind]}")
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        for fault, kind in _SQLITE_FAULTS.items():
            if fault in text:
                advice = WHAT_TO_DO[kind] if kind else ("a full disk or a failing device: free some space, or "
                                                        "choose another --home or --db")
                return BenchError(str(db_path or "results database"), f"cannot write the results database: "
                                  f"{exc}; {advice}")
    return None
