"""Training seeds (`seeds: N`): replicas at load time, distinct keys and weights, replica-wise references, one
aggregated leaderboard row per model with an interval covering seeds and test images, per-seed export rows,
and ranks that tie overlapping intervals."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from bench.cli import main
from bench.errors import BenchError
from bench.results.metrics import Proportion, replica_mean, t_quantile, wilson_interval
from bench.suite.load import load_suite
from bench.suite.planner import build_plan

SUITE = {
    "name": "seeds2",
    "seed": 0,
    "seeds": 2,
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 8, "lr": 0.05, "batch_size": 16}},
               "b": {"arch": "tiny", "recipe": {"epochs": 8, "lr": 0.03, "batch_size": 16}},
               "a2": {"arch": "tiny", "init_from": "a", "recipe": {"epochs": 1, "lr": 0.01, "batch_size": 16}}},
    "defenses": {"jpeg": {"use": "jpeg", "params": {"quality": 75}, "applies_to": ["a"]}},
    "attacks": {"fgsm": {"attack": "fgsm", "backend": "art", "eps": [0.01, 0.03], "table": {"eps": 0.03}}},
    "threat_models": {"white_box": True, "transfer": [["a", "b"]]},
    "evaluation": {"max_attack_images": 12, "attack_batch_size": 12, "gradient_norm_images": 8},
    "report": {"figures": False},
    "profiles": {"three": {"seeds": 3}},
}


def _write(tmp_path, **changes) -> str:
    path = tmp_path / "seeds2.yaml"
    path.write_text(yaml.safe_dump({**SUITE, **changes}, sort_keys=False))
    return str(path)


def test_replicas_expand_at_load_time_with_replica_wise_references(tmp_path):
    ls = load_suite(_write(tmp_path))
    assert list(ls.models) == ["a", "a@seed1", "b", "b@seed1", "a2", "a2@seed1"]
    r1 = ls.models["a@seed1"]
    assert (r1.replica, r1.group, r1.group_name) == (1, "a", "a")
    assert (ls.models["a"].replica, ls.models["a"].group_name) == (0, "a")
    assert ls.models["a2@seed1"].config.init_from == "a@seed1"
    assert ls.suite.defenses["jpeg"].applies_to == ["a", "a@seed1"]
    assert [tuple(p) for p in ls.suite.threat_models.transfer] == [("a", "b"), ("a@seed1", "b@seed1")]
    assert load_suite(_write(tmp_path), profile="three").suite.seeds == 3  # a profile may set the seeds
    plan = build_plan(ls, "data", ["x"])
    keys = {n: m.key for n, m in plan.models.items()}
    assert len(set(keys.values())) == 6  # every replica its own model key
    assert plan.models["a2@seed1"].deps == (keys["a@seed1"],)
    one = build_plan(load_suite(_write(tmp_path, seeds=1)), "data", ["x"])
    assert one.models["a"].key == keys["a"]  # replica 0 keeps the one-seed key
    transfers = {(c.source.name, c.target.name) for c in plan.attacks if c.threat == "transfer"}
    assert ("a@seed1", "b@seed1") in transfers and ("a", "b@seed1") not in transfers
    assert LoadedRoundTrip(ls)


def LoadedRoundTrip(ls) -> bool:  # noqa: N802  (a helper the assert above reads as a sentence)
    from bench.suite.loaded import LoadedSuite
    back = LoadedSuite.from_dict(ls.as_dict())
    return back.models == ls.models and back.suite == ls.suite


@pytest.mark.parametrize("bad", [0, 33, True, "2", 1.5])
def test_seeds_is_a_strict_integer_from_1_to_32(tmp_path, bad):
    with pytest.raises(BenchError, match="seeds"):
        load_suite(_write(tmp_path, seeds=bad))


def test_interval_with_one_seed_is_wilson_exactly():
    p = Proportion(37, 64).as_dict()
    agg = replica_mean([p])
    assert (agg["lo"], agg["hi"], agg["value"], agg["n"]) == (*wilson_interval(37, 64), p["value"], 64)
    assert agg["seeds"] == 1


def test_interval_over_seeds_is_wider_than_both_parts():
    props = [Proportion(k, 64).as_dict() for k in (30, 40, 36)]
    agg = replica_mean(props)
    mean = (30 + 40 + 36) / 3 / 64
    assert agg["value"] == pytest.approx(mean) and agg["n"] == 64 and agg["seeds"] == 3
    w_lo, w_hi = wilson_interval(mean * 64, 64)
    values = [k / 64 for k in (30, 40, 36)]
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    spread = t_quantile(2) * sd / math.sqrt(3)
    assert agg["lo"] < w_lo and agg["hi"] > w_hi  # wider than test sampling alone
    assert agg["lo"] < mean - spread and agg["hi"] > mean + spread  # wider than the seeds alone
    assert agg["lo"] == pytest.approx(mean - math.hypot(mean - w_lo, spread))
    same = replica_mean([Proportion(36, 64).as_dict()] * 3)  # identical replicas: test sampling only
    assert (same["lo"], same["hi"]) == pytest.approx(wilson_interval(36, 64))
    assert replica_mean([Proportion(0, 8).as_dict(), Proportion(8, 8).as_dict()])["lo"] == 0.0  # clipped


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("seeds")
    suite = _write(base)
    assert main(["run", suite, "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    return base, suite


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_replicas_train_to_different_weights(seeded_run):
    base, _ = seeded_run
    ckpts = {p.name.rsplit("-", 1)[0]: p for p in (base / "home" / "checkpoints").glob("*.safetensors")}
    assert {"a", "a@seed1", "b", "b@seed1"} <= set(ckpts)
    w0, w1 = load_file(ckpts["a"]), load_file(ckpts["a@seed1"])
    assert w0.keys() == w1.keys()
    assert any(not (w0[k] == w1[k]).all() for k in w0)


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_leaderboard_shows_one_row_per_model_with_the_mean_of_seeds(seeded_run):
    base, _ = seeded_run
    text = (base / "lb" / "seeds2.md").read_text()
    table_i = text.split("## Table I")[1].split("## Table II")[0]
    rows = [li for li in table_i.splitlines() if li.startswith("| ") and "Model" not in li and "---" not in li]
    names = [re.sub(r"( \(\d of 2 seeds flagged\))? †$", "", li.split("|")[1].strip()) for li in rows]
    assert names == ["a", "b", "a2", "a + jpeg"]
    assert "n = 40 test images (20 fake, 20 real) per seed, each cell the mean over 2 training seeds" in table_i
    table_ii = text.split("## Table II")[1].split("\n## ")[0]
    assert "(seed 1)" not in table_i and "(seed 1)" not in table_ii
    assert "n = 12 attacked fakes per seed" in table_ii and "the mean over 2 training seeds" in table_ii
    ranking = text.split("## Defense ranking")[1].split("\n## ")[0]
    assert "(seed 1)" not in ranking and "x2 seeds" in ranking
    assert "Machine-dependent: CPU" in text and "torch threads" in text
    assert "Training seeds: every model trained 2 times" in text


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_export_has_per_seed_rows(seeded_run, tmp_path):
    base, suite = seeded_run
    out = tmp_path / "cells.csv"
    assert main(["export", suite, "--home", str(base / "home"), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    models = frame[frame["kind"] == "model"]
    assert sorted(zip(models["model"], models["seed"], models["model_group"], strict=True)) == [
        ("a", 0, "a"), ("a2", 0, "a2"), ("a2@seed1", 1, "a2"), ("a@seed1", 1, "a"), ("b", 0, "b"),
        ("b@seed1", 1, "b")]
    attacks = frame[(frame["kind"] == "attack") & (frame["model_group"] == "a")]
    assert set(attacks["seed"]) == {0, 1} and attacks["metrics.accuracy.value"].notna().all()


def test_averages_over_a_grid_pool_each_replica_then_take_the_mean():
    from bench.report.replicas import pool_groups

    m1 = replica_mean([Proportion(10, 20).as_dict(), Proportion(14, 20).as_dict()])
    m2 = replica_mean([Proportion(6, 20).as_dict(), Proportion(12, 20).as_dict()])
    pooled = pool_groups([m1, m2, None])
    assert pooled["seeds"] == 2 and pooled["n"] == 40
    assert pooled["value"] == pytest.approx(((10 + 6) / 40 + (14 + 12) / 40) / 2)
    one = pool_groups([replica_mean([Proportion(10, 20).as_dict()]), replica_mean([Proportion(6, 20).as_dict()])])
    assert (one["k"], one["n"], one["lo"], one["hi"]) == (16, 40, *wilson_interval(16, 40))  # one seed: as before


def test_a_gave_up_replica_flags_the_averaged_cell():
    from types import SimpleNamespace

    from bench.report.replicas import aggregate_cells

    board = SimpleNamespace(gave_up=frozenset({"craft-1"}))  # only the attribute aggregate_cells reads
    cells = [{"metrics": {"accuracy": Proportion(3, 12).as_dict()}, "craft_key": "craft-0"},
             {"metrics": {"accuracy": Proportion(12, 12).as_dict()}, "craft_key": "craft-1"}]
    value, text = aggregate_cells(board, cells)
    assert value is None and text.endswith("‡ (1 of 2 seeds)") and "x2 seeds" in text
    value, text = aggregate_cells(board, cells[:1])
    assert value is not None and text == "25.0% [8.9, 53.2] n=12"
