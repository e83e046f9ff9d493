"""The defense ranking (bench.report.ranking, bench.report.paired): two axes, paired comparisons, ranks.

The statistics are checked on constructed per-image outcomes and against direct computations; the whole
path (real SQLite store, the suite's plan, the leaderboard section) on constructed predictions of a suite
whose cells are stored by hand (no training: the outcomes are what the test says they are).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.report import paired
from bench.report.board import Board
from bench.report.leaderboard import defense_ranking
from bench.report.ranking import baseline_of, compute_ranking
from bench.results.metrics import Proportion, classification_metrics, replica_mean
from bench.results.query import results_from
from bench.results.store import ResultStore
from bench.suite.load import load_suite
from bench.suite.planner import build_plan

N, K = 32, 3


def _superset_outcomes() -> tuple[np.ndarray, np.ndarray]:
    """Per seed and image: A detects 11 of 32 attacked fakes (one of them differs by seed), B the same ones
    and 6 more (a strict superset)."""
    a = np.zeros((K, N))
    for s in range(K):
        a[s, :10] = 1
        a[s, 10 + s] = 1
    b = a.copy()
    b[:, 20:26] = 1
    return a, b


# ---------------------------------------------------------------------- the statistics
def test_paired_comparison_separates_where_unpaired_intervals_overlap():
    a, b = _superset_outcomes()
    ua = replica_mean([Proportion(int(x.sum()), N).as_dict() for x in a])
    ub = replica_mean([Proportion(int(x.sum()), N).as_dict() for x in b])
    assert ub["lo"] < ua["hi"], "the unpaired intervals overlap: they cannot order A and B"
    c = paired.compare(b, a, "mean", paired.draw(K, N))
    assert c.diff == pytest.approx(6 / N)
    assert c.separated and c.lo > 0  # the same images: B never misses one A detects


def test_paired_comparison_ties_when_models_trade_images():
    a, _ = _superset_outcomes()
    b = a.copy()
    b[:, 0:3] = 0  # B misses three images A detects ...
    b[:, 26:29] = 1  # ... and detects three A misses
    c = paired.compare(a, b, "mean", paired.draw(K, N))
    assert c.diff == 0 and c.lo < 0 < c.hi and not c.separated
    # B detects 3 fakes more than A on two seeds and 3 fewer on the third: one retraining reverses it
    x = np.zeros((K, N))
    x[:, :10] = 1
    y = np.zeros((K, N))
    y[:2, :13] = 1
    y[2, :7] = 1
    c = paired.compare(y, x, "mean", paired.draw(K, N))
    assert c.diff > 0 and not c.separated
    same = paired.compare(a, a.copy(), "mean", paired.draw(K, N))
    assert (same.diff, same.lo, same.hi, same.separated) == (0, 0, 0, False)


def test_bootstrap_equals_a_hand_written_loop_on_the_same_draws():
    rng = np.random.default_rng(5)
    x = rng.random((2, 5))
    x[1, 3] = np.inf  # an unbroken image
    d = paired.draw(2, 5, b=200, seed=11)
    for stat, fn in (("mean", np.mean), ("median", np.median)):
        loop = []
        for b in range(200):
            per_seed = [fn([x[d.seeds[b, j], i] for i in d.images[b, j]]) for j in range(2)]
            loop.append(sum(per_seed) / 2)
        assert np.array_equal(paired.replicates(x, stat, d), np.array(loop))
        ordered = sorted(loop)
        assert paired.interval(np.array(loop)) == (ordered[math.floor(0.025 * 199)], ordered[math.ceil(0.975 * 199)])
    # the draws come from one generator: every seed draw, then every image draw
    rng = np.random.default_rng(11)
    assert np.array_equal(d.seeds, rng.integers(0, 2, size=(200, 2)))
    assert np.array_equal(d.images, rng.integers(0, 5, size=(200, 2, 5)))


def test_bootstrap_intervals_match_the_normal_approximation_on_a_large_sample():
    rng = np.random.default_rng(0)
    n = 4000
    a = (rng.random((1, n)) < 0.3).astype(float)
    d = paired.draw(1, n)
    lo, hi = paired.interval(paired.replicates(a, "mean", d))
    half = 1.959964 * math.sqrt(0.3 * 0.7 / n)
    assert lo == pytest.approx(a.mean() - half, abs=0.15 * half)
    assert hi == pytest.approx(a.mean() + half, abs=0.15 * half)
    # paired: B = A with 5% of the images flipped each way at random; the normal interval of the mean difference
    b = a.copy()
    flip = rng.random(n) < 0.1
    b[0, flip] = 1 - b[0, flip]
    c = paired.compare(b, a, "mean", d)
    diff = (b - a)[0]
    se = diff.std(ddof=1) / math.sqrt(n)
    assert c.diff == pytest.approx(diff.mean())
    assert (c.hi - c.lo) == pytest.approx(2 * 1.959964 * se, rel=0.15)


def test_infinite_medians_compare_without_nan():
    unbroken = np.full((1, 4), np.inf)
    broken = np.array([[0.5, 0.7, 0.9, np.inf]])  # median 0.8; a resample with two unbroken fakes: inf
    d = paired.draw(1, 4, b=400)
    assert paired.point(unbroken, "median") == math.inf
    c = paired.compare(unbroken, unbroken.copy(), "median", d)
    assert (c.diff, c.lo, c.hi, c.separated) == (0, 0, 0, False)  # neither broken: no measured difference
    c = paired.compare(unbroken, broken, "median", d)
    assert c.diff == math.inf and c.lo == 0 and c.hi == math.inf and not c.separated


def test_rank_is_one_plus_the_rows_separated_above():
    values = {"A": 0.9, "B": 0.8, "C": 0.7}
    assert paired.ranks(values, {}) == {"A": (1, True), "B": (1, True), "C": (1, True)}
    everything = {("A", "B"): True, ("A", "C"): True, ("B", "C"): True}
    assert paired.ranks(values, everything) == {"A": (1, False), "B": (2, False), "C": (3, False)}
    # A above B is separated, C is separated from neither: C shares A's rank
    assert paired.ranks(values, {("A", "B"): True}) == {"A": (1, True), "B": (2, False), "C": (1, True)}


# ---------------------------------------------------------------------- through the store
SUITE = """
name: ranked
seed: 0
seeds: 3
data: {source: synthetic-faces, n: 96, size: 32}
models:                                      # distinct recipes: equal configs would be one model (one key)
  a: {arch: tiny, recipe: {lr: 0.01}}
  b: {arch: tiny, recipe: {lr: 0.02}}
  c: {arch: tiny, recipe: {lr: 0.01}, defense: {lipschitz: {lambda: 50}}, baseline: a}
  d: {arch: tiny, recipe: {lr: 0.03}}
defenses:
  jpeg: {use: jpeg, params: {quality: 75}, applies_to: [a], adaptive: true}
attacks:
  fgsm: {attack: fgsm, backend: native, eps: 0.02}
  pgd: {attack: pgd, backend: native, eps: [0.02, 0.5], norm: linf, steps: 5, step_size: 0.01, random_start: false,
        table: {eps: 0.02}}
  cw: {attack: cw_l2, backend: native, confidence: 0.0, c_min: 1.0, c_max: 10.0, binary_search_steps: 1,
       max_iterations: 5, learning_rate: 0.01}
  fmn: {attack: fmn, backend: native, steps: 10, max_stepsize: 1.0, min_stepsize: 0.01, gamma: 0.05}
threat_models: {white_box: true}
evaluation: {max_attack_images: 32, controls: false, checks: {unbounded: null, convergence: null}}
report: {figures: false}
"""
FAKES = [f"f{i:02d}" for i in range(N)]
REALS = [f"r{i:02d}" for i in range(16)]
ROBUST = {  # per group: the attacked fakes it detects under every attack at eps 0.02 (seed s adds image 10 + s)
    "a": lambda s: set(range(10)) | {10 + s},
    "a+jpeg": lambda s: set(range(10)) | {10 + s},
    "b": lambda s: set(range(10)) | {10 + s} | set(range(20, 26)),
    "c": lambda s: set(range(5)),
    "d": lambda s: set(range(4)),
}


def _clean(group: str) -> np.ndarray:
    """P(real) of the fakes unperturbed: d (degenerate) detects only the first 8."""
    return np.array([0.9 if group == "d" and i >= 8 else 0.1 for i in range(N)])


def _attack(group: str, seed: int, key: str, eps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(P(real), L2 after storage) per attacked fake of one attack cell."""
    i = np.arange(N)
    if key in ("fgsm", "pgd") and eps == 0.02:
        robust = ROBUST[group](seed) | (set(range(26, 32)) if key == "fgsm" else set())  # pgd is the stronger
        return np.array([0.1 if j in robust else 0.9 for j in i]), np.full(N, 0.08)
    if key == "pgd":  # eps 0.5: bounded, but not at the headline budget; fools everything
        return np.full(N, 0.9), np.full(N, 2.0)
    if key == "cw":  # unbounded: fools every model on every fake, except c (on none)
        l2 = np.where((i % 2 == 0) & (group == "a"), 0.5, 3.0)
        return (np.full(N, 0.1) if group == "c" else np.full(N, 0.9)), l2
    # fmn: a: 1 + i/100; a+jpeg: 1.2 + i/100; b: 1.5 + i/100; c: fools only the first 10 (L2 2.0); d: 1.0
    if group == "c":
        return np.where(i < 10, 0.9, 0.1), np.full(N, 2.0)
    offset = {"a": 1.0, "a+jpeg": 1.2, "b": 1.5}.get(group)
    return np.full(N, 0.9), (np.full(N, 1.0) if offset is None else offset + i / 100)


def _group(plan, variant) -> tuple[str, int]:
    rm = plan.models[variant.model].model
    return rm.group_name + (f"+{variant.defense}" if variant.defense else ""), rm.replica


def _board(tmp_path: Path, extra: dict | None = None, norms: bool = True, suite: str = SUITE) -> Board:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "ranked.yaml"
    path.write_text(suite)
    ls = load_suite(path, extra=extra)
    plan = build_plan(ls, "constructed", FAKES)
    store = ResultStore(tmp_path / "results.sqlite")
    labels = np.array([0] * N + [1] * len(REALS))
    for v in plan.variants.values():
        group, _ = _group(plan, v)
        p = np.concatenate([_clean(group), np.full(len(REALS), 0.9)])
        store.put(plan.cleans[v.name].key, "clean", {}, classification_metrics(labels, p), 0.0, "cpu", None,
                  (FAKES + REALS, labels, p))
    for cell in plan.attacks:
        group, seed = _group(plan, cell.target)
        p, l2 = _attack(group, seed, cell.attack.key, cell.attack.budget_value)
        acc = Proportion(int((p < 0.5).sum()), N).as_dict()
        store.put(cell.key, "attack", {}, {"accuracy": acc}, 0.0, "cpu", None,
                  (FAKES, np.zeros(N), p, *((l2 + 0.1, l2) if norms else ())))
    return Board(results_from(store, ls, plan), tmp_path)


def test_ranking_from_the_store(tmp_path):
    b = _board(tmp_path)
    rk = compute_ranking(b)
    assert rk.headline == "L-inf eps = 0.02"
    rob = {g: rk.rows[g]["robust"] for g in rk.rows}
    # the per-image worst case over the headline cells (fgsm and pgd at 0.02, white-box and adaptive); the
    # unbounded CW and the PGD at eps 0.5 fool every fake and would make every value 0 if they entered
    assert rob["a"].value == pytest.approx(11 / N) and rob["a+jpeg"].value == pytest.approx(11 / N)
    assert rob["b"].value == pytest.approx(17 / N) and rob["c"].value == pytest.approx(5 / N)
    assert rob["d"].value == pytest.approx(4 / N)
    assert rob["a"].cells == 2 * K and rob["a+jpeg"].cells == 4 * K  # white-box and adaptive through jpeg
    assert (rob["a"].n, rob["a"].seeds) == (N, K)
    # ranks: b is separated above everything; a and a+jpeg are identical (tied); c below them; d flagged, last
    assert [(g, rob[g].rank, rob[g].tied) for g in rk.order] == [
        ("b", 1, False), ("a", 2, True), ("a+jpeg", 2, True), ("c", 4, False), ("d", 5, False)]
    assert rk.flagged == {"d": "degenerate, 3 of 3 seeds"}
    # every pair but a against a+jpeg (the same images) and c against d (one image apart on each seed)
    assert rk.separated["robust"] == (8, 10)
    pairs = {(p.a, p.b): p.separated for p in rk.pairs["robust"]}
    assert pairs[("c", "d")] is False and pairs[("b", "a")] is True
    assert rob["b"].lo < rob["a"].hi  # ... although their unpaired intervals overlap


def test_min_norm_axis_from_constructed_l2(tmp_path):
    b = _board(tmp_path)
    rk = compute_ranking(b)
    mn = {g: rk.rows[g]["min_norm"] for g in rk.rows}
    # a: CW's 0.5 on even fakes, FMN's 1 + i/100 on odd ones: the median of 16 x 0.5 and 1.01 .. 1.31
    assert mn["a"].value == pytest.approx((0.5 + 1.01) / 2)
    assert mn["b"].value == pytest.approx((1.65 + 1.66) / 2)  # CW's 3.0 is never the smallest
    assert mn["c"].value == math.inf and mn["c"].max_finite == 2.0  # 22 of 32 fakes unbroken
    assert mn["d"].value == 0.0  # 24 fakes missed unperturbed count as 0
    assert mn["c"].rank == 1 and mn["b"].rank == 2 and mn["d"].rank == 5
    diffs = {(d.a, d.axis): d for d in rk.baseline_diffs}
    assert rk.baselines == {"c": ("a", "`baseline:` in the suite"), "a+jpeg": ("a", "its base model")}
    assert diffs[("c", "min_norm")].diff == math.inf and diffs[("c", "min_norm")].separated
    assert diffs[("c", "robust")].diff == pytest.approx(-6 / N) and diffs[("c", "robust")].separated
    assert diffs[("a+jpeg", "robust")].diff == 0 and not diffs[("a+jpeg", "robust")].separated
    text = defense_ranking(b)
    assert "Separated pairs: robust accuracy: 8 of 10" in text and "> 2.00" in text
    assert "Did the defense help?" in text and "+inf [" in text


def test_an_unbounded_attack_never_enters_the_robust_axis(tmp_path):
    # only unbounded attacks: no headline budget, so no robust axis at all (n/a), whatever they fool
    suite = SUITE.replace("  fgsm: {attack: fgsm, backend: native, eps: 0.02}\n", "")
    suite = suite.replace(suite[suite.index("  pgd:"):suite.index("  cw:")], "")
    rk = compute_ranking(_board(tmp_path / "unbounded", suite=suite))
    assert rk.headline.startswith("none")
    assert all(r["robust"].value is None and r["robust"].cells == 0 for r in rk.rows.values())
    assert rk.rows["a"]["min_norm"].value == pytest.approx((0.5 + 1.01) / 2)
    # a chosen headline budget reads only the bounded attack at it (PGD at 0.5 fools every fake)
    rk = compute_ranking(_board(tmp_path / "half", extra={"report": {"headline": {"norm": "linf", "eps": 0.5}}}))
    assert rk.headline == "L-inf eps = 0.5" and "report.headline" in rk.headline_reason
    assert all(r["robust"].value == 0 for r in rk.rows.values())
    assert rk.rows["a"]["robust"].cells == K


def test_old_rows_without_norms_read_na_never_a_number(tmp_path):
    rk = compute_ranking(_board(tmp_path, norms=False))
    a = rk.rows["a"]["min_norm"]
    assert a.value is None and a.rank is None and "not recorded" in a.reason
    assert rk.rows["a"]["robust"].value == pytest.approx(11 / N)


def test_a_baseline_must_name_one_other_model(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    with pytest.raises(BenchError, match="unknown model"):
        load_suite(path, extra={"models": {"c": {"baseline": "nope"}}})
    with pytest.raises(BenchError, match="this model itself"):
        load_suite(path, extra={"models": {"b": {"baseline": "b"}}})


def test_inferred_baselines(tmp_path):
    text = """
name: inferred
data: {source: synthetic-faces, n: 96, size: 32}
models:
  a: {arch: tiny, recipe: {lr: 0.01}}
  c: {arch: tiny, recipe: {lr: 0.02}, defense: {lipschitz: {lambda: 50}}}
  e: {arch: tiny, recipe: {lr: 0.03}, init_from: c, defense: {blur: {fraction: 0.4}}}
attacks: {}
"""
    path = tmp_path / "inferred.yaml"

    def baselines(suite: str) -> dict:
        path.write_text(suite)
        ls = load_suite(path)
        b = Board(results_from(ResultStore(tmp_path / f"{len(suite)}.sqlite"), ls, build_plan(ls, "x", FAKES)),
                  tmp_path)
        groups = {v["name"] for v in b.variants}
        return {v["name"]: baseline_of(b, v, groups) for v in b.variants}

    assert baselines(text) == {"a": None, "c": ("a", "the one tiny without a defense"), "e": ("c", "its `init_from`")}
    # two undefended models of the architecture: no inferred baseline (the suite must say which)
    two = text.replace("attacks: {}", "  b: {arch: tiny, recipe: {lr: 0.04}}\nattacks: {}")
    assert baselines(two)["c"] is None


def test_groups_without_results_read_na(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    ls = load_suite(path)
    b = Board(results_from(ResultStore(tmp_path / "empty.sqlite"), ls, build_plan(ls, "x", FAKES)), tmp_path)
    rk = compute_ranking(b)
    assert set(rk.rows) == {"a", "b", "c", "d", "a+jpeg"}
    assert all(a.value is None and a.rank is None and "no clean result" in a.reason
               for row in rk.rows.values() for a in row.values())
    assert rk.separated == {"robust": (0, 0), "min_norm": (0, 0)} and not rk.baseline_diffs
