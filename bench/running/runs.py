"""Run bookkeeping beside the store: who runs (pid and host), and runs left `running` by a dead process.

`record_owner` stores the pid and host of a run; `mark_abandoned`, called when a run starts (under the home
lock, so no other run on this home is live), marks every run still `running` whose process is gone as
`abandoned`. The `pid` and `host` columns are part of the store's schema (`bench.results.store`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time


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
    with db:
        db.execute("UPDATE runs SET pid=?, host=? WHERE run_id=?", (os.getpid(), socket.gethostname(), run_id))


def mark_abandoned(db: sqlite3.Connection) -> list[int]:
    """Mark runs left `running` by a process that no longer exists (on this host) as `abandoned`; their ids.

    A run without a pid (written before pids were stored) is abandoned too: the caller holds the home lock.
    """
    host = socket.gethostname()
    dead = [run_id for run_id, pid, run_host in
            db.execute("SELECT run_id, pid, host FROM runs WHERE status='running'").fetchall()
            if not isinstance(pid, int) or pid <= 0  # none recorded (or a damaged row): nobody can own it
            or (run_host == host and pid != os.getpid() and not _alive(pid))]
    if dead:
        with db:
            db.executemany("UPDATE runs SET status='abandoned', finished=? WHERE run_id=?",
                           [(time.time(), r) for r in dead])
    return dead
