import math

import numpy as np
import pytest

from bench.results.metrics import Proportion, auroc, classification_metrics, perturbation_norms, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3)
    assert hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_interval_contains_value_and_narrows_with_n():
    small, big = Proportion(45, 50), Proportion(900, 1000)
    for p in (small, big):
        lo, hi = p.interval
        assert lo <= p.value <= hi
    assert (big.interval[1] - big.interval[0]) < (small.interval[1] - small.interval[0])


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.3 * labels, 2)  # rounded: ties on purpose
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(labels, scores) == pytest.approx(pairs)
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0


def test_classification_metrics_per_class():
    labels = np.array([0, 0, 0, 1, 1, 1])
    p_real = np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.4])  # one fake missed, one real missed
    m = classification_metrics(labels, p_real)
    assert m["accuracy"]["k"] == 4 and m["accuracy"]["n"] == 6
    assert m["fake_recall"]["value"] == pytest.approx(2 / 3)
    assert m["fake_precision"]["value"] == pytest.approx(2 / 3)
    assert m["real_recall"]["value"] == pytest.approx(2 / 3)
    assert {"lo", "hi", "n"} <= set(m["fake_recall"])


def test_perturbation_norms():
    clean = np.zeros((2, 3, 2, 2))
    adv = clean.copy()
    adv[0, 0, 0, 0] = 0.3
    adv[1] = 0.1
    l2, linf = perturbation_norms(clean, adv)
    assert l2[0] == pytest.approx(0.3) and linf[0] == pytest.approx(0.3)
    assert l2[1] == pytest.approx(0.1 * np.sqrt(12)) and linf[1] == pytest.approx(0.1)
