"""Atomic file writes with unique temporary names: concurrent writers of one file never trip over each other.

Each write goes to its own temporary file in the target's folder (so `os.replace` stays on one file system),
then replaces the target in one step: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from bench.errors import BenchError


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(fh)` on a fresh temporary file beside `path`, then move it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with fh:
            write(fh)
        os.chmod(fh.name, 0o644)
        os.replace(fh.name, path)
    except OSError as exc:  # a full disk, a read-only folder: name the target, never the temporary file
        if exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if os.path.exists(fh.name):
            os.unlink(fh.name)


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what atomic_write names its temporary files


def remove_stale_temporaries(folder: Path, older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files `atomic_write` left in `folder` (a process killed while writing), those
    older than `older_than_s` seconds; the paths removed. Call it where no other writer can be mid-write
    (under the home lock), or with an age no live write reaches."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing or unreadable: nothing to clean
        return removed
    now = time.time()
    for entry in entries:
        try:
            if (_TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False)
                    and now - entry.stat(follow_symlinks=False).st_mtime >= older_than_s):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def writable_or_error(folder: Path, what: str) -> None:
    """Raise `BenchError` now if `folder` (or, when absent, its nearest existing parent) is not writable."""
    folder = Path(folder).absolute()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise BenchError(str(probe), f"{what} must be a folder, and this is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BenchError(str(probe), f"{what} is not writable (read-only or no permission); choose another folder")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_savefig(fig, path: Path) -> None:
    """Save a matplotlib figure to `path` atomically, in the format its suffix names."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt))
