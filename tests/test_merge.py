"""`bench merge` is all or nothing: sources verified first, conflicts refused, no self-merge, atomic target."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import numpy as np

from bench.cli import main
from bench.results.store import ResultStore

KEY = "ab" * 32
OTHER = "cd" * 32


def bench(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def make_store(path: Path, accuracy: float, seconds: float = 1.0, key: str = KEY, home: str = "/h0") -> Path:
    """A store with one finished, sealed run holding one attack cell and one model cell."""
    store = ResultStore(path)
    run = store.start_run("s", None, git_commit="abc", versions={}, seed=0, device="cpu")
    preds = (["i0", "i1"], np.array([0, 0]), np.array([0.25, accuracy]))
    store.put(key, "attack", {"model": "a"}, {"accuracy": {"value": accuracy}, "seconds_per_image": seconds}, seconds,
              "cpu", run, preds, model="a")
    store.put(OTHER, "model", {"model": "a"}, {"losses": [1.0, 0.5], "path": f"{home}/checkpoints/a.safetensors"},
              seconds, "cpu", run, None, files={"checkpoint": {"path": "checkpoints/a.safetensors", "sha256": "0" * 64,
                                                               "bytes": 10}})
    store.finish_run(run, 2, 0, cells=[key, OTHER])
    store.close()
    return path


def test_the_same_results_merge_and_the_merged_runs_verify(tmp_path):
    # one cell computed twice on one machine: another duration, another home, the same result
    one = make_store(tmp_path / "one.sqlite", 0.75, seconds=1.0, home="/h0")
    two = make_store(tmp_path / "two.sqlite", 0.75, seconds=2.5, home="/h1")
    target = tmp_path / "all.sqlite"
    code, err = bench("merge", str(target), str(one), str(two))
    assert code == 0, err
    store = ResultStore(target, readonly=True)
    assert store.verify_all() == 2
    assert len(store.db.execute("SELECT run_id FROM runs").fetchall()) == 2
    assert store.latest_run("s", None) is not None  # the re-sealed copy of the second run verifies
    store.close()


def test_a_conflict_is_refused_naming_the_cell_and_both_stores_and_the_target_is_unchanged(tmp_path):
    one = make_store(tmp_path / "one.sqlite", 0.75)
    two = make_store(tmp_path / "two.sqlite", 0.5)
    target = tmp_path / "all.sqlite"
    assert bench("merge", str(target), str(one))[0] == 0
    before = target.read_bytes()
    code, err = bench("merge", str(target), str(two))
    assert code == 2 and err.count("\n") == 1, err
    assert f"error: {two}: cell {KEY[:16]} (attack) holds another result in {target}" in err
    assert target.read_bytes() == before
    code, err = bench("merge", str(tmp_path / "new.sqlite"), str(one), str(two))
    assert code == 2 and f"{two}: cell {KEY[:16]} (attack) holds another result in {one}" in err, err
    assert not (tmp_path / "new.sqlite").exists()


def test_a_garbage_or_damaged_source_leaves_no_target(tmp_path):
    good = make_store(tmp_path / "good.sqlite", 0.75)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    target = tmp_path / "all.sqlite"
    code, err = bench("merge", str(target), str(good), str(garbage))
    assert code == 2 and err.count("\n") == 1 and f"{garbage}: the results database is damaged" in err, err
    damaged = make_store(tmp_path / "damaged.sqlite", 0.75)
    con = sqlite3.connect(damaged)
    con.execute("UPDATE predictions SET p_real = 0.1 WHERE image_id = 'i1'")
    con.commit()
    con.close()
    code, err = bench("merge", str(target), str(good), str(damaged))
    assert code == 2 and f"{damaged}: cell {KEY[:16]} is damaged" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.sqlite", "garbage.sqlite", "good.sqlite"]


def test_a_store_is_not_merged_into_itself_nor_a_source_twice(tmp_path):
    one = make_store(tmp_path / "one.sqlite", 0.75)
    before = one.read_bytes()
    code, err = bench("merge", str(one), str(one))
    assert code == 2 and "cannot be merged into itself" in err, err
    code, err = bench("merge", str(tmp_path / "t.sqlite"), str(one), str(tmp_path / "." / "one.sqlite"))
    assert code == 2 and "is given twice" in err, err
    assert one.read_bytes() == before and not (tmp_path / "t.sqlite").exists()
    code, err = bench("merge", str(tmp_path / "t.sqlite"), str(tmp_path))
    assert code == 2 and "is a folder" in err, err
