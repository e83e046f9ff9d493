"""Regenerate the golden files: `tests/expected/tiny.sqlite` (a finished store of `tests/suites/tiny.yaml`)
and `tests/expected/tiny.md` (its leaderboard, as `bench report` renders it from that store alone).

    python tests/expected/regenerate.py

Run it after a change that gives cells new keys or new metrics (a kind's version bump, `declare_kind`, a new
column, a new attack in the tiny suite) or changes the leaderboard's text, then review `git diff tests/expected/tiny.md`
and commit both files. The golden test (`tests/test_end_to_end.py`) renders the committed store, so it
checks the renderer on every machine; the numbers in the store come from whichever machine ran this.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SUITE = ROOT / "tests" / "suites" / "tiny.yaml"
STORE = HERE / "tiny.sqlite"
BOARD = HERE / "tiny.md"
MAX_BYTES = 512 * 1024  # the store is committed: it must stay small


def compact_copy(src: Path, dst: Path) -> None:
    """A one-file copy of a store (no WAL beside it, rollback journal) without free pages."""
    tmp = dst.with_name(dst.name + ".new")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(src)
    con.execute("VACUUM INTO ?", (str(tmp),))
    con.close()
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    tmp.replace(dst)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from bench.cli import main as bench

    with tempfile.TemporaryDirectory(prefix="bench-golden-") as tmp:
        work = Path(tmp)
        if bench(["run", str(SUITE), "--home", str(work / "home"), "--out", str(work / "run"), "--quiet"]) != 0:
            return 1
        compact_copy(work / "home" / "results.sqlite", work / "tiny.sqlite")
        shutil.copyfile(work / "tiny.sqlite", STORE)  # the report reads a copy: the committed bytes stay as written
        if bench(["report", "tiny", "--db", str(work / "tiny.sqlite"), "--out", str(work / "report")]) != 0:
            return 1
        shutil.copyfile(work / "report" / "tiny.md", BOARD)
    size = STORE.stat().st_size
    print(f"wrote {STORE.relative_to(ROOT)} ({size / 1024:.0f} KiB) and {BOARD.relative_to(ROOT)}")
    if size > MAX_BYTES:
        print(f"the store is larger than {MAX_BYTES // 1024} KiB: shrink tests/suites/tiny.yaml", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
