"""Atomic file writes with unique temporary names: concurrent writers of one file never trip over each other.

Each write goes to its own temporary file in the target's folder (so `os.replace` stays on one file system),
then replaces the target in one step: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


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
    finally:
        if os.path.exists(fh.name):
            os.unlink(fh.name)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_savefig(fig, path: Path) -> None:
    """Save a matplotlib figure to `path` atomically, in the format its suffix names."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt))
