"""Read-only commands read only; `bench run` refuses before its first write (issue 24)."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import without_rendering_commit

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "expected"
SUITE = """\
name: t
data: {source: synthetic-faces, n: 40, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 1}}
attacks:
  f: {attack: fgsm, backend: art, eps: [0.03]}
evaluation: {max_attack_images: 8, attack_batch_size: 8, gradient_norm_images: 8}
"""


def bench(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_read_only_commands_on_a_missing_home_create_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    suite = tmp_path / "t.yaml"
    suite.write_text(SUITE)
    home = tmp_path / "home"
    for args in (["report", str(suite)], ["export", str(suite)], ["report", "t", "--db", str(tmp_path / "x.sqlite")]):
        code, err = bench(*args, "--home", str(home))
        assert code == 2 and "no results database here" in err and err.count("\n") == 1, err
    assert bench("validate", str(suite))[0] == 0
    assert bench("list")[0] == 0
    assert listing(tmp_path) == ["t.yaml"]  # no home, no .bench, no database, no matplotlib cache


def _without_permission_override() -> None:
    from test_environment import _without_permission_override as drop  # tests/ is on sys.path under pytest

    drop()


def _read_only_works(tmp: Path) -> bool:
    from test_environment import _read_only_works as works

    return works(tmp)


def test_report_and_export_work_on_a_read_only_home(tmp_path):
    if not _read_only_works(tmp_path):
        pytest.skip("cannot make a folder read-only for this user here")
    home = tmp_path / "home"
    home.mkdir()
    db = home / "results.sqlite"
    db.write_bytes((GOLDEN / "tiny.sqlite").read_bytes())
    con = sqlite3.connect(db)  # as `bench run` leaves it: in WAL mode
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.close()
    db.chmod(0o444)
    home.chmod(0o555)
    before = listing(home)
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_HOME", "MPLCONFIGDIR")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    try:
        for args in (["report", "tiny", "--out", str(tmp_path / "lb")],
                     ["export", "tiny", "--out", str(tmp_path / "cells.csv")]):
            proc = subprocess.run([sys.executable, "-m", "bench", *args, "--home", str(home)], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300, preexec_fn=_without_permission_override)
            assert proc.returncode == 0, proc.stderr
    finally:
        home.chmod(0o755)
    assert listing(home) == before  # nothing written beside the database either (-wal, -shm, matplotlib)
    got = (tmp_path / "lb" / "tiny.md").read_text()
    assert without_rendering_commit(got) == without_rendering_commit((GOLDEN / "tiny.md").read_text())
    assert (tmp_path / "cells.csv").stat().st_size > 1000


def test_run_refuses_before_its_first_write(tmp_path):
    suite = tmp_path / "t.yaml"
    suite.write_text(SUITE)
    home = tmp_path / "home"
    (tmp_path / "folder.sqlite").mkdir()
    (tmp_path / "garbage.sqlite").write_bytes(b"garbage" * 100)
    cases = [
        (["--db", str(tmp_path / "folder.sqlite")], "folder.sqlite: is a folder, not a results database file"),
        (["--db", str(tmp_path / "garbage.sqlite")], "garbage.sqlite: the results database is damaged"),
        (["--executor", "ray", "--num-gpus-per-cell", "nan"], "--num-gpus-per-cell: must be >= 0 (a finite number)"),
        (["--executor", "ray", "--address", "127.0.0.1:1"], "--address: no Ray cluster answers at 127.0.0.1:1"),
    ]
    for extra, message in cases:
        code, err = bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet", *extra)
        assert code == 2 and message in err and err.count("\n") == 1, (extra, err)
        assert not home.exists() and not (tmp_path / "lb").exists()
    assert (tmp_path / "garbage.sqlite").read_bytes() == b"garbage" * 100
