"""Metric records (`bench.results.records`): every stored kind round-trips byte for byte, older rows read with their
declared defaults, averaging over seeds follows the declarations, and a new metric is one declaration."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.results.metrics import Proportion, classification_metrics, replica_mean, summary
from bench.results.records import (
    AttackMetrics,
    CleanMetrics,
    CraftMetrics,
    GradNormMetrics,
    MetricRecord,
    Prop,
    metric,
    plain_mean,
    proportion_mean,
)
from bench.results.subset_metrics import attack_breakdown, clean_breakdown

GOLDEN_STORE = Path(__file__).parent / "expected" / "tiny.sqlite"
RECORDS: dict[str, type[MetricRecord]] = {"clean": CleanMetrics, "attack": AttackMetrics, "craft": CraftMetrics,
                                          "gradnorm": GradNormMetrics}


def _text(d: dict) -> str:
    return json.dumps(d, sort_keys=True)  # as the store writes a cell's metrics


def _round_trip(record: type[MetricRecord], stored: dict) -> None:
    back = record.parse(stored, strict=True).dump()
    assert set(back) == set(stored)
    assert _text(back) == _text(stored)  # same keys, same values (NaN included), same bytes


def test_every_stored_row_of_the_golden_store_round_trips_byte_for_byte():
    con = sqlite3.connect(f"file:{GOLDEN_STORE}?mode=ro", uri=True)
    rows = con.execute("SELECT kind, metrics FROM cells").fetchall()
    con.close()
    seen = {kind: 0 for kind in RECORDS}
    for kind, text in rows:
        if kind in RECORDS:
            back = RECORDS[kind].parse(json.loads(text), strict=True).dump()  # strict: every key declared
            assert _text(back) == text
            seen[kind] += 1
    assert all(seen.values()), seen


def test_clean_metrics_with_abstentions_subsets_and_videos_round_trip():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 12)
    p_real = rng.random(24)
    abstain = rng.random(24) < 0.2
    subsets = ["a", "b", "c"] * 8
    groups = [f"v{i // 3}" for i in range(24)]
    m = classification_metrics(labels, p_real, abstain=abstain)
    m.update(clean_breakdown(labels, p_real, subsets, groups, abstain))
    assert {"abstained", "by_subset", "video", "auroc_lo"} <= set(m)
    _round_trip(CleanMetrics, m)
    rec = CleanMetrics.parse(m)
    assert rec.accuracy is m["accuracy"] and rec.by_subset is m["by_subset"]


def test_attack_metrics_with_every_optional_field_and_empty_norms_round_trip():
    empty = summary(np.array([]))  # no successful image: NaN
    m = {"accuracy": Proportion(3, 8).as_dict(), "clean_accuracy": Proportion(6, 8).as_dict(),
         "success_rate": Proportion(0, 0).as_dict(), "l2": summary(np.ones(8)), "linf": summary(np.ones(8)),
         "l2_successful": empty, "linf_successful": empty, "l2_per_image": {"ids": ["x"], "l2": [1.0]},
         "smoothed": {"ids": ["x"], "l2_from_stored": [0.5], "vote": ["abstain"], "sigma": 0.25},
         "reference_accuracy": Proportion(4, 8).as_dict()}
    m.update(attack_breakdown(np.array([True, False] * 4), ["a", "b"] * 4))
    _round_trip(AttackMetrics, m)
    assert math.isnan(AttackMetrics.parse(m).l2_successful["mean"])


def test_older_rows_read_their_declared_defaults_and_dump_unchanged():
    old_gradnorm = {"mean": 1.5, "median": 1.25, "n": 16}  # before zero / non-finite gradients were counted
    g = GradNormMetrics.parse(old_gradnorm, strict=True)
    assert g.zero is None and g.non_finite is None
    _round_trip(GradNormMetrics, old_gradnorm)
    old_attack = {k: v for k, v in _attack(5, 12).items() if k != "l2_per_image"}  # before per-image L2
    assert AttackMetrics.parse(old_attack, strict=True).l2_per_image is None
    _round_trip(AttackMetrics, old_attack)
    old_clean = classification_metrics(np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.6, 0.9]))  # no AUROC interval
    assert CleanMetrics.parse(old_clean, strict=True).auroc_lo is None
    _round_trip(CleanMetrics, old_clean)


def test_strict_parsing_names_a_missing_field_and_an_undeclared_key():
    with pytest.raises(ValueError, match="clean_accuracy"):
        AttackMetrics.parse({"accuracy": Proportion(1, 2).as_dict()}, strict=True)
    with pytest.raises(ValueError, match="surprise"):
        GradNormMetrics.parse({"mean": 1.0, "median": 1.0, "n": 1, "surprise": 2}, strict=True)
    lenient = GradNormMetrics.parse({"mean": 1.0, "median": 1.0, "n": 1, "surprise": 2})
    assert lenient.extra == {"surprise": 2} and lenient.dump()["surprise"] == 2  # kept, never lost


def _attack(k: int, n: int) -> dict:
    norms = summary(np.linspace(0.1, 0.5, n))
    return {"accuracy": Proportion(k, n).as_dict(), "clean_accuracy": Proportion(n - 1, n).as_dict(),
            "success_rate": Proportion(n - 1 - k, n - 1).as_dict(), "l2": norms, "linf": norms,
            "l2_successful": norms, "linf_successful": norms, "l2_per_image": {"ids": ["x"], "l2": [0.1]}}


def test_over_seeds_follows_the_declarations_as_the_report_did_by_key():
    seeds = [AttackMetrics.parse(_attack(k, 12)) for k in (3, 5, 9)]
    agg = AttackMetrics.over_seeds(seeds)
    assert agg is not None
    assert agg.accuracy == replica_mean([s.accuracy for s in seeds])  # proportions: the mean with its interval
    assert agg.accuracy["seeds"] == 3 and agg.success_rate == replica_mean([s.success_rate for s in seeds])
    assert agg.l2 == pytest.approx(seeds[0].l2)  # the same norms on each seed: their mean
    assert agg.l2_per_image is seeds[0].l2_per_image  # per-image fields: the first seed's
    assert agg.reference_accuracy is None and agg.by_subset is None  # no seed has them
    assert AttackMetrics.over_seeds([None, None]) is None


def test_clean_metrics_over_seeds_keep_a_missing_replica_in_the_seed_count():
    """As Table I did: a replica without its clean cell counts as a seed only where no replica has a value."""
    labels, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.6, 0.9])
    one = CleanMetrics.parse(classification_metrics(labels, p))
    agg = CleanMetrics.over_seeds([one, None])
    assert agg is not None
    assert agg.accuracy == replica_mean([one.accuracy, None]) and agg.auroc == one.auroc
    assert agg.abstained is None  # absent from every replica


def test_a_new_metric_is_one_declaration_plus_its_computation():
    @dataclass(frozen=True, kw_only=True)
    class WithFlips(AttackMetrics):
        flipped_back: Prop | None = metric(proportion_mean, optional=True)  # the declaration
        seconds: float | None = metric(plain_mean, optional=True)

    def compute(k: int, n: int) -> dict:  # the computation, beside what scoring stores
        return {**_attack(k, n), "flipped_back": Proportion(n - k, n).as_dict(), "seconds": float(k)}

    stored = [compute(k, 12) for k in (2, 7)]
    for d in stored:
        _round_trip(WithFlips, d)  # stored and read back as declared
    agg = WithFlips.over_seeds([WithFlips.parse(d) for d in stored])  # averaged over seeds with no code of its own
    assert agg is not None
    assert agg.flipped_back == replica_mean([d["flipped_back"] for d in stored])
    assert agg.seconds == 4.5 and agg.accuracy == replica_mean([d["accuracy"] for d in stored])
    assert WithFlips.parse(_attack(1, 12)).flipped_back is None  # an older row: its declared default

    @dataclass(frozen=True, kw_only=True)
    class Tiny(MetricRecord):  # a record of its own: two declarations
        hits: Prop = metric(proportion_mean)
        seconds: float = metric(plain_mean)

    tiny = [Tiny(hits=Proportion(k, 10).as_dict(), seconds=1.0 * k) for k in (4, 6)]
    assert Tiny.parse(tiny[0].dump(), strict=True) == tiny[0]
    agg_tiny = Tiny.over_seeds(tiny)
    assert agg_tiny is not None and agg_tiny.seconds == 5.0
    assert agg_tiny.hits == replica_mean([t.hits for t in tiny])
