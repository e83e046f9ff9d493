"""The store verifies what it serves: files against the digests recorded when they were written, rows against
their own digests, the database's schema and integrity when it is opened (issue 24)."""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bench.cli import main
from bench.models.checkpoint import tensors_digest
from bench.results.integrity import StoreDamaged
from bench.results.store import ResultStore

SUITE = """\
name: t
data: {source: synthetic-faces, n: 40, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 2, lr: 0.05}}
  b: {arch: tiny, recipe: {epochs: 2, lr: 0.02}}
attacks:
  f: {attack: fgsm, backend: art, eps: [0.03]}
evaluation: {max_attack_images: 8, attack_batch_size: 8, gradient_norm_images: 8}
report: {figures: false}
"""


def bench(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("integrity")
    suite = base / "t.yaml"
    suite.write_text(SUITE)
    code, err = bench("run", str(suite), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet")
    assert code == 0, err
    return suite, base / "home", (base / "lb" / "t.md").read_text()


def _copy(home: Path, tmp_path: Path) -> Path:
    shutil.copytree(home, tmp_path / "home")
    return tmp_path / "home"


def _board(text: str) -> str:
    from test_end_to_end import normalise  # tests/ is on sys.path under pytest

    return normalise(text)


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_a_checkpoint_replaced_by_another_models_is_retrained_not_used(finished, tmp_path):
    suite, home, board = finished
    home = _copy(home, tmp_path)
    a, b = sorted((home / "checkpoints").glob("*.safetensors"))
    original = tensors_digest(load_file(a))
    shutil.copyfile(b, a)
    code, err = bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet")
    assert code == 0, err
    assert f"{a}: damaged" in err and "recomputing it" in err  # its size or its SHA-256 differs
    assert tensors_digest(load_file(a)) == original  # trained again, to the same weights on this machine
    assert _board((tmp_path / "lb" / "t.md").read_text()) == _board(board)


def test_a_dropped_table_is_a_damaged_store_for_every_command(finished, tmp_path):
    suite, home, _ = finished
    home = _copy(home, tmp_path)
    con = sqlite3.connect(home / "results.sqlite")
    con.execute("DROP TABLE predictions")
    con.commit()
    con.close()
    for args in (["report", str(suite), "--out", str(tmp_path / "lb")],
                 ["export", str(suite), "--out", str(tmp_path / "x.csv")],
                 ["run", str(suite), "--out", str(tmp_path / "lb"), "--quiet"]):
        code, err = bench(*args, "--home", str(home))
        assert code == 2 and err.count("\n") == 1, err
        assert f"{home / 'results.sqlite'}: the results database is damaged (the predictions table is missing)" in err
        assert "restore it from a backup, or move it aside" in err
    con = sqlite3.connect(home / "results.sqlite")  # never re-created silently
    assert "predictions" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert not (tmp_path / "lb").exists() and not (tmp_path / "x.csv").exists()


def test_an_undecodable_row_is_named_by_its_cell_key_and_a_run_recomputes_it(finished, tmp_path):
    suite, home, board = finished
    home = _copy(home, tmp_path)
    con = sqlite3.connect(home / "results.sqlite")
    (key,) = con.execute("SELECT cell_id FROM cells WHERE kind='clean' LIMIT 1").fetchone()
    con.execute("UPDATE cells SET metrics='not json' WHERE cell_id=?", (key,))
    con.commit()
    con.close()
    code, err = bench("report", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"))
    assert code == 2 and f"cell {key[:16]} is damaged" in err and err.count("\n") == 1, err
    code, err = bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet")
    assert code == 0 and f"cell {key[:16]} is damaged" in err and "recomputing it" in err, err
    code, err = bench("report", str(suite), "--home", str(home), "--out", str(tmp_path / "again"))
    assert code == 0, err
    assert _board((tmp_path / "again" / "t.md").read_text()) == _board(board)


def test_a_changed_number_or_a_deleted_cell_is_refused_by_report(finished, tmp_path):
    suite, home, _ = finished
    for n, statement in enumerate(("UPDATE predictions SET p_real = 1 - p_real WHERE rowid = 1",
                                   "DELETE FROM cells WHERE kind = 'attack' AND rowid IN "
                                   "(SELECT rowid FROM cells WHERE kind = 'attack' LIMIT 1)")):
        copy = _copy(home, tmp_path / str(n))
        con = sqlite3.connect(copy / "results.sqlite")
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute(statement)
        con.commit()
        con.close()
        code, err = bench("report", str(suite), "--home", str(copy), "--out", str(tmp_path / "lb"))
        assert code == 2 and err.count("\n") == 1, err
        assert ("no longer matches the digest" in err) if n == 0 else ("is missing; rerun `bench run`" in err)


def test_new_empty_and_garbage_database_files(tmp_path):
    ResultStore(tmp_path / "new.sqlite").close()  # a new store is created
    (tmp_path / "empty.sqlite").write_bytes(b"")
    ResultStore(tmp_path / "empty.sqlite").close()  # so is an empty file
    assert {"runs", "cells", "predictions"} <= {r[0] for r in sqlite3.connect(tmp_path / "empty.sqlite").execute(
        "SELECT name FROM sqlite_master")}
    (tmp_path / "garbage.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreDamaged, match="garbage.sqlite.*damaged.*restore it from a backup"):
        ResultStore(tmp_path / "garbage.sqlite")
    assert (tmp_path / "garbage.sqlite").read_bytes() == b"not a database" * 100
    with pytest.raises(StoreDamaged):
        ResultStore(tmp_path / "garbage.sqlite", readonly=True)


def test_a_table_name_damaged_into_bytes_that_are_not_utf8_is_a_damaged_store(tmp_path):
    """One flipped byte in the schema's text (found by the random damage test): named damage, not a decode crash."""
    db = tmp_path / "r.sqlite"
    ResultStore(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    data = bytearray(db.read_bytes())
    at = data.index(b"CREATE TABLE predictions") + len(b"CREATE TABLE ")
    data[at] = 0xFF  # the name no longer decodes as UTF-8
    db.write_bytes(bytes(data))
    for readonly in (True, False):
        with pytest.raises(StoreDamaged, match="r.sqlite"):
            ResultStore(db, readonly=readonly)
