"""The home lock: one `bench run` at a time per home, so two runs never compute the same cells.

A second `bench run` on a home that another holds waits (printing who holds it) until the first finishes,
then finds the first run's cells in the store and reuses them. The lock is an advisory `flock` on
`HOME/bench.running.lock`: the kernel releases it when its process dies (kill -9 included), so it is never stale.
Where `fcntl` is missing (Windows), runs are not serialised.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import BenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = "bench.running.lock"


@contextmanager
def home_lock(home: Path, wait: bool = True) -> Iterator[Path]:
    """Hold `home`'s lock for the block; waits for (or, with `wait=False`, refuses) a run holding it."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    with open(path, "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                owner = fh.read().strip()[:200] or "another process"
                if not wait:
                    raise BenchError(str(home), f"another bench run ({owner}) is using this home") from None
                print(f"waiting for another bench run ({owner}) on {home} to finish...", file=sys.stderr, flush=True)
                fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        try:
            yield path
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)
