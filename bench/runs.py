"""Run bookkeeping beside the store: who runs (pid and host), and runs left `running` by a dead process.

`record_owner` stores the pid and host of a run; `mark_abandoned`, called when a run starts (under the home
lock, so no other run on this home is live), marks every run still `running` whose process is gone as
`abandoned`. The two columns are added to an older database's `runs` table on first use.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time


def _ensure_columns(db: sqlite3.Connection) -> None:
    cols = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    with db:
        if "pid" not in cols:
            db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
        if "host" not in cols:
            db.execute("ALTER TABLE runs ADD COLUMN host TEXT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def record_owner(db: sqlite3.Connection, run_id: int) -> None:
    """Store this process's pid and host with run `run_id`."""
    _ensure_columns(db)
    with db:
        db.execute("UPDATE runs SET pid=?, host=? WHERE run_id=?", (os.getpid(), socket.gethostname(), run_id))


def mark_abandoned(db: sqlite3.Connection) -> list[int]:
    """Mark runs left `running` by a process that no longer exists (on this host) as `abandoned`; their ids.

    A run without a pid (written before pids were stored) is abandoned too: the caller holds the home lock.
    """
    _ensure_columns(db)
    host = socket.gethostname()
    dead = [run_id for run_id, pid, run_host in
            db.execute("SELECT run_id, pid, host FROM runs WHERE status='running'").fetchall()
            if pid is None or (run_host == host and pid != os.getpid() and not _alive(pid))]
    if dead:
        with db:
            db.executemany("UPDATE runs SET status='abandoned', finished=? WHERE run_id=?",
                           [(time.time(), r) for r in dead])
    return dead
