"""The DIP protocol without overlap, DIP as a suite defense with `readout: auto`, and the adaptive DIP cells.

- `split_pools` on pools shaped like the quick profile's (every attacked fake stands in one category per attack
  and threat): calibration and evaluation source images are disjoint, evaluation prefers distinct sources;
- a tiny suite (a few DIP iterations) with DIP both as an adaptive suite defense (`readout: auto`, calibrated on
  the suite's calibration images) and as the DIP section with adaptive PGD and CW-L2 cells and their convergence
  twins: it runs, its stored source ids are disjoint, each twin ran twice the steps on the same images, and Table
  III shows the adaptive rows with n and intervals and DIP's recovery as the lower of adaptive and non-adaptive.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch

from bench import FAKE, REAL
from bench.cli import main
from bench.dip.protocol import UNPERTURBED_FAKE, UNPERTURBED_REAL, Sampled, distinct_sources, split_pools
from bench.report.format import prop


def _quick_like_pools(seed: int = 0) -> dict[str, list[Sampled]]:
    """64 attacked fakes, 5 attacks x 2 threats, each fake either fooling (wrong) or not (correct) per pair; 150
    test fakes and 150 reals unperturbed (the attacked fakes among the fakes), as in the quick profile."""
    rng = np.random.default_rng(seed)
    img = torch.zeros(3, 4, 4)
    pools: dict[str, list[Sampled]] = {}
    attacked = [f"fake{i:03d}" for i in range(64)]
    for threat in ("white-box", "black-box"):
        for attack in ("fgsm-0.02", "cw_l2", "apgd-0.02", "fmn", "autoattack"):
            fooled = rng.random(64) < (0.8 if threat == "white-box" else 0.3)
            for image_id, f in zip(attacked, fooled, strict=True):
                cat = f"{threat} {attack} {'fake-wrong' if f else 'fake-correct'}"
                pools.setdefault(cat, []).append(Sampled(cat, image_id, FAKE, img, 0.9 if f else 0.1))
    pools[UNPERTURBED_FAKE] = [Sampled(UNPERTURBED_FAKE, f"fake{i:03d}", FAKE, img, 0.1) for i in range(150)]
    pools[UNPERTURBED_REAL] = [Sampled(UNPERTURBED_REAL, f"real{i:03d}", REAL, img, 0.9) for i in range(150)]
    return pools


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_and_evaluation_sources_are_disjoint(seed):
    pools = _quick_like_pools(seed)
    evaluation, calibration = split_pools(pools, per_category=6, calibration_per_category=2, seed=seed)
    cal = {s.image_id for s in calibration}
    ev = {s.image_id for s in evaluation}
    assert cal and ev
    assert not cal & ev, f"calibration sources evaluated: {sorted(cal & ev)}"
    # every category keeps its evaluation images (up to per_category) and gets calibration images where possible
    cats = {s.category for s in evaluation}
    assert len(cats) >= len(pools) - 1
    assert len({s.category for s in calibration}) >= len(pools) // 2
    # calibration holds few sources out (it reuses them across categories)
    assert len(cal) <= 16
    # within a category, sources are distinct; across categories, as distinct as the pools allow
    for c in cats:
        ids = [s.image_id for s in evaluation if s.category == c]
        assert len(ids) == len(set(ids))
    d = distinct_sources(evaluation)
    fake_eval = [s for s in evaluation if s.image_id.startswith("fake")]
    attacked_left = 64 - len({i for i in cal if i.startswith("fake")})
    assert d["all"] == len(ev)
    assert len({s.image_id for s in fake_eval}) >= min(attacked_left, len(fake_eval)) - 1


def test_split_is_seeded():
    pools = _quick_like_pools(0)
    a = split_pools(pools, 6, 2, seed=5)
    b = split_pools(pools, 6, 2, seed=5)
    assert [(s.category, s.image_id) for s in a[0]] == [(s.category, s.image_id) for s in b[0]]


TINY_DIP = {"iterations": 6, "readout": "auto", "readout_range": [2, 6, 2], "input_channels": 4,
            "channels_down": [4, 4], "channels_up": [4, 4], "channels_skip": [0, 2], "batch_size": 8}

SUITE = {
    "name": "tinydip",
    "seed": 0,
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 10, "lr": 0.05, "batch_size": 16}}},
    "attacks": {"fgsm": {"attack": "fgsm", "backend": "native", "eps": 0.03}},
    "defenses": {"dip": {"use": "dip", "params": TINY_DIP, "applies_to": ["a"], "adaptive": True}},
    "threat_models": {"white_box": True},
    "evaluation": {"max_attack_images": 12, "attack_batch_size": 12, "gradient_norm_images": 4},
    "dip": {
        "classifier": "a", "per_category": 2, "calibration_per_category": 1, "params": TINY_DIP,
        "trajectory_points": 2,
        "adaptive": {
            "images": 3,
            "pgd": {"eps": [0.03], "steps": 2, "step_size": 0.015, "eot": 2, "restarts": 1},
            "cw_l2": {"confidence": 0.0, "c_min": 1.0, "c_max": 10.0, "binary_search_steps": 1,
                      "max_iterations": 2, "learning_rate": 0.05, "eot": 2},
        },
    },
}


@pytest.fixture(scope="module")
def tiny_dip_run(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("dip")
    suite = base / "tinydip.yaml"
    suite.write_text(json.dumps(SUITE))  # JSON is YAML
    assert main(["run", str(suite), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    con = sqlite3.connect(base / "home" / "results.sqlite")
    rows = con.execute("SELECT kind, metrics FROM cells").fetchall()
    con.close()
    return [(k, json.loads(m)) for k, m in rows], (base / "lb" / "tinydip.md").read_text()


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_dip_suite_defense_with_readout_auto_runs(tiny_dip_run):
    cells, board = tiny_dip_run
    kinds = [k for k, _ in cells]
    assert kinds.count("clean") == 2  # a, and a + dip (calibrated: no "readout is 'auto'" error)
    assert "a + dip" in board


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_stored_dip_sources_are_disjoint_and_adaptive_rows_have_intervals(tiny_dip_run):
    cells, board = tiny_dip_run
    dip = [m for k, m in cells if k == "dip"]
    assert len(dip) == 1
    src = dip[0]["source_ids"]
    assert src["calibration"] and src["evaluation"]
    assert not set(src["calibration"]) & set(src["evaluation"])
    every = [m for k, m in cells if k == "dip-adaptive"]
    adaptive = [m for m in every if m["role"] == "attack"]
    assert sorted(m["attack"] for m in adaptive) == ["cw_l2", "pgd"]
    # each attack's convergence twin: twice the steps, on the same images
    twins = [m for m in every if m["role"] == "convergence"]
    assert sorted(m["attack"] for m in twins) == ["cw_l2", "pgd"]
    for t in twins:
        m = next(m for m in adaptive if m["attack"] == t["attack"])
        assert t["steps"] == 2 * m["steps"] and t["image_ids"] == m["image_ids"]
        assert t["purifications_per_image"] > m["purifications_per_image"]
    for m in adaptive:
        assert m["unchanged"]["n"] == m["n_images"]
        assert m["attack_readout"] == m["readout"]  # the attack reads out where the evaluation does
        assert 1 <= m["n_images"] <= 3
        assert m["readout"] == dip[0]["readout"]  # the same calibrated readout as the DIP cell
        assert m["purifications_per_image"] >= 2  # EOT 2: at least two purifications per gradient
        for t in ("0.5", "0.25"):
            acc = m["by_threshold"][t]["accuracy"]
            assert acc["n"] == m["n_images"] and acc["lo"] - 1e-9 <= acc["value"] <= acc["hi"] + 1e-9
    assert "### Adaptive attacks through DIP" in board
    pgd = next(m for m in adaptive if m["attack"] == "pgd")
    assert prop(pgd["by_threshold"]["0.25"]["accuracy"]) in board
    assert "adaptive: PGD L-inf eps 0.03" in board and "adaptive: CW-L2" in board
    assert "distinct source images" in board
    assert "DIP's recovery of fooled fakes" in board and "convergence twin" in board


def test_resampling_dip_draws_a_new_seed_per_call_deterministically():
    from bench.dip.config import DIPConfig
    from bench.dip.preprocessor import DIPPreprocessor

    cfg = DIPConfig(**{**TINY_DIP, "readout": 4})
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a, b = DIPPreprocessor(cfg, seed=3, resample=True), DIPPreprocessor(cfg, seed=3, resample=True)
    a1, a2 = a.transform(x), a.transform(x)
    assert not torch.equal(a1, a2)  # each call is another DIP
    assert torch.equal(a1, b.transform(x)) and torch.equal(a2, b.transform(x))  # the same sequence from the seed
    fixed = DIPPreprocessor(cfg, seed=3)
    assert torch.equal(fixed.transform(x), fixed.transform(x))  # without resample: one DIP per image content
    assert DIPPreprocessor(DIPConfig(**TINY_DIP)).needs_calibration()
    assert not fixed.needs_calibration()
