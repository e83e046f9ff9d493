"""The SQLite store and suite expansion (grids, profiles, cell keys)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from bench.data.sources import load_data
from bench.results.store import SCHEMA, ResultStore
from bench.suite.load import deep_merge, load_suite
from bench.suite.planner import plan_for_data

SUITE = Path(__file__).parent / "suites" / "tiny.yaml"


def test_store_round_trip_and_replace(tmp_path: Path):
    db = tmp_path / "r.sqlite"
    store = ResultStore(db)
    run = store.start_run("s", "quick", git_commit="abc", versions={"torch": "x"}, seed=1, device="cpu",
                          overrides={"a": 1})
    store.put("c1", "clean", {"m": "a"}, {"acc": 0.5}, 1.5, "cpu", run, (["i1", "i2"], np.array([0, 1]),
                                                                         np.array([0.2, 0.9])))
    store.finish_run(run, 1, 0)
    store.close()
    store = ResultStore(db)  # persisted
    assert store.has("c1") and not store.has("c2")
    cell = store.get("c1")
    assert cell.metrics == {"acc": 0.5} and cell.key == {"m": "a"} and cell.run_id == run
    assert store.predictions("c1") == {"i1": (0, 0.2), "i2": (1, 0.9)}
    store.put("c1", "clean", {"m": "a"}, {"acc": 0.7}, 1.0, "cpu", run, (["i3"], np.array([1]), np.array([0.6])))
    assert store.get("c1").metrics == {"acc": 0.7} and list(store.predictions("c1")) == ["i3"]
    latest = store.latest_run("s", "quick")
    assert latest["git_commit"] == "abc" and latest["overrides"] == {"a": 1} and latest["status"] == "finished"


def test_per_image_norms_are_stored_and_an_old_store_reads_null(tmp_path: Path):
    store = ResultStore(tmp_path / "new.sqlite")
    store.put("a1", "attack", {}, {}, 1.0, "cpu", None,
              (["i1", "i2"], np.array([0, 0]), np.array([0.7, 0.1]), np.array([0.5, 1.25]), np.array([0.25, np.nan])))
    store.put("c1", "clean", {}, {}, 1.0, "cpu", None, (["i1"], np.array([0]), np.array([0.2])))
    assert store.predictions_with_norms("a1") == {"i1": (0, 0.7, 0.5, 0.25), "i2": (0, 0.1, 1.25, None)}
    assert store.predictions_with_norms("c1") == {"i1": (0, 0.2, None, None)}
    assert store.predictions("a1") == {"i1": (0, 0.7), "i2": (0, 0.1)}
    store.close()
    # a store made before the norm columns: opening it adds them; its rows read NULL, never 0
    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.executescript(SCHEMA.replace("    l2 REAL,\n    l2_before REAL,\n", ""))
    con.execute("INSERT INTO cells (cell_id, kind, key, metrics, duration_s, created) "
                "VALUES ('old', 'attack', '{}', '{}', 1.0, 0.0)")
    con.execute("INSERT INTO predictions VALUES ('old', 'i1', 0, 0.9)")  # the old table's four columns
    con.commit()
    con.close()
    merged = ResultStore(tmp_path / "merged.sqlite")
    merged.merge_from(old)  # a shard of an older version: its rows come over with NULL norms
    assert merged.predictions_with_norms("old") == {"i1": (0, 0.9, None, None)}
    merged.close()
    store = ResultStore(old)
    assert store.predictions_with_norms("old") == {"i1": (0, 0.9, None, None)}
    store.close()


def test_deep_merge_replaces_lists_and_merges_maps():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base["a"]["c"] == [1, 2]


def test_grid_expansion_and_keys():
    ls = load_suite(SUITE)
    labels = [a.label for a in ls.attacks]
    assert labels == ["fgsm[eps=0.01]", "fgsm[eps=0.03]", "fgsm_fb", "cw"]
    assert [a.in_table for a in ls.attacks] == [False, True, True, True]
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    own = [c for c in plan.attacks if c.attack.role == "attack"]  # the controls and check attacks come on top
    assert len(own) == 4 * 4
    assert len({c.key for c in plan.attacks}) == len(plan.attacks) == 16 + 2 * 4 + 2 * 2
    # The same inputs give the same keys; a changed parameter gives new keys.
    again = plan_for_data(load_suite(SUITE), train, test)
    assert [c.key for c in again.attacks] == [c.key for c in plan.attacks]
    other = plan_for_data(load_suite(SUITE, extra={"attacks": {"cw": {"max_iterations": 21}}}), train, test)
    changed = {c.key for c in other.attacks} ^ {c.key for c in plan.attacks}
    # only the four CW cells, the two L2-noise controls sized by CW and the two CW reruns (not-converged), old and new
    assert len(changed) == 16


def test_lipschitz_grid_expands_into_models(tmp_path: Path):
    text = SUITE.read_text().replace(
        "models:\n", "models:\n  r: {arch: tiny, defense: {lipschitz: {lambda: [5, 50]}}}\n", 1)
    p = tmp_path / "s.yaml"
    p.write_text(text)
    ls = load_suite(p)
    assert {"r-lipschitz-lambda5", "r-lipschitz-lambda50"} <= set(ls.models)
    assert ls.models["r-lipschitz-lambda50"].training_defense == ("lipschitz", {"lambda": 50})
