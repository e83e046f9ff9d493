"""A finished store damaged at random (hypothesis): bytes of the database, rows, dropped tables, truncated,
swapped or deleted files in the home. Every command ends in exit 0 with the undamaged store's numbers (after
recomputing what it found damaged), or in exit 2 with one line naming the file: never a traceback, never
other numbers with exit 0.

One small suite is run once; each example damages a copy of its home. `bench report` and `bench export`
run on every example (cheap); `bench run` on one example in ten (it may retrain a model). Not marked slow:
it compares a run with one on the same machine in the same process, so the thread count cannot matter.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import shutil
import sqlite3
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main

SUITE = """
name: dmg
seed: 0
data: {source: synthetic-faces, n: 160, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 8, lr: 0.05, batch_size: 16}}
  b: {arch: tiny, recipe: {epochs: 8, lr: 0.03, batch_size: 16}}
attacks:
  fgsm: {attack: fgsm, backend: art, eps: [0.01, 0.03], table: {eps: 0.03}}
  cw: {attack: cw_l2, backend: foolbox, confidence: 0.0, c_min: 1.0, c_max: 10.0, binary_search_steps: 1,
       max_iterations: 5, learning_rate: 0.05, abort_early: true}
threat_models: {white_box: true, transfer: [[a, b]]}
evaluation: {max_attack_images: 12, attack_batch_size: 12, gradient_norm_images: 8}
report: {figures: false}
"""


def _bench(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)  # an uncaught exception fails the test with its traceback
    return code, err.getvalue()


def _normalise(board: str) -> str:
    from test_end_to_end import normalise  # tests/ is on sys.path under pytest

    return normalise(board)


class Finished(dict):
    def __repr__(self) -> str:  # hypothesis prints its arguments
        return f"<the finished store under {self['home']}>"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Finished:
    base = tmp_path_factory.mktemp("damage")
    suite = base / "dmg.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    home = base / "home"
    code, err = _bench(["run", str(suite), "--home", str(home), "--out", str(base / "lb"), "--quiet"])
    assert code == 0, err
    assert not (home / "results.sqlite-wal").exists()
    outputs = _outputs(home, base / "ref", suite)
    table_ii = outputs["report"].split("## Table II")[1].split("\n## ")[0]
    assert re.search(r"\| [1-9][0-9.]* \(\d", table_ii), table_ii  # numbers that damage could change
    return Finished(suite=suite, home=home, board=(base / "lb" / "dmg.md").read_text(), **outputs)


def _outputs(home: Path, out: Path, suite: Path) -> dict:
    code, err = _bench(["report", str(suite), "--home", str(home), "--out", str(out)])
    assert code == 0, err
    code, err = _bench(["export", str(suite), "--home", str(home), "--out", str(out / "cells.csv"), "--predictions"])
    assert code == 0, err
    return {"report": (out / "dmg.md").read_text(), "export": (out / "cells.csv").read_text(),
            "predictions": (out / "cells-predictions.csv").read_text()}


# ------------------------------------------------------------------ damage
def _db_bytes(home: Path, rng: random.Random) -> None:
    path = home / "results.sqlite"
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 16)):
        at = rng.randrange(len(data))
        data[at] = rng.randrange(256)
    path.write_bytes(bytes(data))


def _db_truncate(home: Path, rng: random.Random) -> None:
    path = home / "results.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data))])


def _db_header(home: Path, rng: random.Random) -> None:
    path = home / "results.sqlite"
    data = bytearray(path.read_bytes())
    data[: 100] = bytes(rng.randrange(256) for _ in range(100))
    path.write_bytes(bytes(data))


def _sql(home: Path, statement: str, *args) -> None:
    con = sqlite3.connect(home / "results.sqlite")
    try:
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute(statement, args)
        con.commit()
    except sqlite3.Error:  # an earlier damage got there first (a dropped table, a garbage header)
        pass
    finally:
        con.close()


def _drop_table(home: Path, rng: random.Random) -> None:
    _sql(home, f"DROP TABLE {rng.choice(['runs', 'cells', 'predictions'])}")


def _delete_rows(home: Path, rng: random.Random) -> None:
    table = rng.choice(["runs", "cells", "predictions"])
    _sql(home, f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY random() LIMIT ?)",
         rng.randint(1, 3))


def _edit_row(home: Path, rng: random.Random) -> None:
    column, value = rng.choice([("metrics", "not json"), ("metrics", "[1, 2]"), ("key", "{"), ("metrics", "null"),
                                ("kind", "craft"), ("files", "{}"), ("digest", "0" * 64)])
    _sql(home, f"UPDATE cells SET {column}=? WHERE rowid=(SELECT rowid FROM cells ORDER BY random() LIMIT 1)", value)


def _edit_number(home: Path, rng: random.Random) -> None:
    """A plausible value in place of another: valid JSON, another number."""
    choice = rng.randrange(3)
    if choice == 0:
        _sql(home, "UPDATE cells SET metrics=replace(metrics, '\"k\": ', '\"k\": 1') WHERE rowid=(SELECT rowid FROM "
                   "cells WHERE metrics LIKE '%\"k\": %' ORDER BY random() LIMIT 1)")
    elif choice == 1:
        _sql(home, "UPDATE predictions SET p_real=1 - p_real WHERE rowid=(SELECT rowid FROM predictions "
                   "ORDER BY random() LIMIT 1)")
    else:
        _sql(home, "UPDATE runs SET plan=replace(plan, '0.03', '0.05'), started=started + 1")


def _files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file() and p.parent != home)


def _truncate_file(home: Path, rng: random.Random) -> None:
    path = rng.choice(_files(home))
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data))])


def _flip_file(home: Path, rng: random.Random) -> None:
    path = rng.choice(_files(home))
    data = bytearray(path.read_bytes())
    at = rng.randrange(len(data))
    data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def _swap_files(home: Path, rng: random.Random) -> None:
    files = _files(home)
    folder = rng.choice(sorted({p.parent for p in files}))
    pair = [p for p in files if p.parent == folder]
    if len(pair) < 2:
        return
    one, two = rng.sample(pair, 2)
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)


def _delete_file(home: Path, rng: random.Random) -> None:
    rng.choice(_files(home)).unlink()


DAMAGE = {f.__name__[1:]: f for f in (_db_bytes, _db_truncate, _db_header, _drop_table, _delete_rows, _edit_row,
                                      _edit_number, _truncate_file, _flip_file, _swap_files, _delete_file)}


def _check(code: int, err: str, ok: bool) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and err.count("error: ") == 1, err
        assert "Traceback" not in err, err
    else:
        assert ok, f"exit 0 with other numbers: {err}"


FAST = settings(deadline=None, database=None, print_blob=True, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(damage=st.lists(st.sampled_from(sorted(DAMAGE)), min_size=1, max_size=2), seed=st.integers(0, 2**32 - 1),
       run=st.integers(0, 9))
def test_a_damaged_store_gives_the_same_numbers_or_one_line(finished, damage, seed, run):
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-damage-") as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(finished["home"], home)
        for name in damage:
            DAMAGE[name](home, rng)
        out = Path(tmp) / "out"
        code, err = _bench(["report", str(finished["suite"]), "--home", str(home), "--out", str(out)])
        _check(code, err, code != 0 or (out / "dmg.md").read_text() == finished["report"])
        code, err = _bench(["export", str(finished["suite"]), "--home", str(home), "--out", str(out / "cells.csv"),
                            "--predictions"])
        _check(code, err, code != 0 or ((out / "cells.csv").read_text() == finished["export"]
                                        and (out / "cells-predictions.csv").read_text() == finished["predictions"]))
        if run == 0:  # one example in ten: a run recomputes what it finds damaged, then renders the same numbers
            code, err = _bench(["run", str(finished["suite"]), "--home", str(home), "--out", str(out / "run"),
                                "--quiet"])
            _check(code, err, code != 0 or _normalise((out / "run" / "dmg.md").read_text())
                   == _normalise(finished["board"]))

