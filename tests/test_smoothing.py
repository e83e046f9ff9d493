"""Randomized smoothing (Cohen, Rosenfeld and Kolter 2019): the `smoothing` defense, PREDICT and CERTIFY, the
`certify` cell against a direct computation from the same noise samples, abstentions as not detected, the
`attack-beats-certificate` check, and the suite fields it needs (a model's `seeds` and `attacks`, an attack's
`models`)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import beta, binom, binomtest, norm
from torch import nn

from bench import FAKE, REAL
from bench.attacks.params import PGDParams
from bench.attacks.registry import run_attack
from bench.attacks.storage import quantise
from bench.cli import main
from bench.defenses.apply import apply_defense
from bench.defenses.base import defense_kinds
from bench.defenses.contract import check_defense
from bench.defenses.registry import create_defense
from bench.errors import BenchError
from bench.models.detector import Detector, ModelSpec
from bench.report.board import Board
from bench.report.sanity import attack_beats_certificate
from bench.results.metrics import classification_metrics
from bench.results.query import load_results
from bench.results.store import ResultStore
from bench.smoothing import scoring
from bench.smoothing.certify import certified_accuracy
from bench.smoothing.defense import SmoothedDetector
from bench.smoothing.report import certified_numbers
from bench.smoothing.stats import ABSTAIN, binomial_p_value, clopper_pearson_lower, predict_from_counts
from bench.suite.load import load_suite
from bench.suite.planner import build_plan
from bench.suite.schema import EvaluationConfig

SIZE = 8  # px: the hand-made detectors below are linear in the image


class Linear(nn.Module):
    """Logits (-s, s) with s = scale * <w, x - 1/2>: 'real' on one side of a hyperplane through mid-grey."""

    def __init__(self, w: torch.Tensor, scale: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("w", w / w.norm())
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale * ((x - 0.5).flatten(1) * self.w.flatten()).sum(1)
        return torch.stack([-s, s], dim=1)


def linear_detector(seed: int = 0) -> Detector:
    w = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return Detector(Linear(w), ModelSpec(arch="linear", input_size=SIZE))


def on_the_fake_side(det: Detector, distance: float) -> torch.Tensor:
    """Mid-grey moved `distance` (L2) away from the hyperplane, to the fake side, by whole 8-bit steps."""
    w = det.net.w
    x = (0.5 - distance * w).clamp(0, 1)
    return quantise(x[None], "png", 95).float().div(255)  # already what an 8-bit file holds


# ------------------------------------------------------------------ the statistics
def test_predict_test_and_certify_bound_agree_with_their_definitions():
    for n in (16, 64, 100):
        k = np.arange(n + 1)
        p = binomial_p_value(k, n - k)
        assert np.allclose(p, [binomtest(int(i), n, 0.5).pvalue for i in k])
    counts = np.array([[60, 4], [40, 24], [3, 61], [32, 32]])
    assert predict_from_counts(counts, 0.001).tolist() == [FAKE, ABSTAIN, REAL, ABSTAIN]
    # the one-sided (1 - alpha) Clopper-Pearson bound L: P(X >= k | p = L) = alpha
    for n, k in ((256, 256), (256, 200), (100000, 99000), (16, 9)):
        lo = float(clopper_pearson_lower(np.array([k]), n, 0.001)[0])
        assert abs(binom.sf(k - 1, n, lo) - 0.001) < 1e-6
    assert clopper_pearson_lower(np.array([0]), 10, 0.001)[0] == 0.0
    assert float(clopper_pearson_lower(np.array([256]), 256, 0.001)[0]) == pytest.approx(0.001 ** (1 / 256))


def test_certified_accuracy_counts_abstentions_and_wrong_classes_as_not_detected():
    cls = np.array([FAKE, FAKE, ABSTAIN, REAL])
    radius = np.array([0.3, 0.1, np.nan, 0.9])
    acc = certified_accuracy(cls, radius, [0.0, 0.25, 0.5])
    assert [(a["k"], a["n"]) for a in acc] == [(2, 4), (1, 4), (0, 4)]


# ------------------------------------------------------------------ the defense
def test_smoothing_is_a_training_defense_and_a_wrapper():
    d = create_defense("smoothing", {"sigma": 0.25}, where="models.m.defense.smoothing", expect="training")
    assert defense_kinds(d) == ("training", "wrapper")
    x = torch.rand(4, 3, SIZE, SIZE)
    a1 = d.augment(x, torch.zeros(4), torch.Generator().manual_seed(1))
    a2 = d.augment(x, torch.zeros(4), torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2) and a1.min() >= 0 and a1.max() <= 1
    assert 0.15 < float((a1 - x).std()) < 0.3  # N(0, 0.25^2) noise, clipped
    assert create_defense("smoothing", {}, where="defenses.s", expect=("preprocessor", "wrapper")).sigma == 0.25
    check_defense(d, linear_detector(), x, kind="wrapper")
    check_defense(d, linear_detector(), x, kind="training")
    for bad in ({"sigma": 0}, {"n": 0}, {"alpha": 0.7}, {"eot": 1.5}, {"sigmas": 1}):
        with pytest.raises(BenchError):
            create_defense("smoothing", bad, where="defenses.s")


def test_an_abstention_scores_as_not_detected_and_wrong_for_both_classes():
    det = apply_defense(linear_detector(), "s", "smoothing", {"sigma": 0.25, "n": 200, "alpha": 0.001, "eot": 4},
                        Path("."))
    assert isinstance(det, SmoothedDetector)
    grey = torch.full((1, 3, SIZE, SIZE), 0.5)  # on the hyperplane: the vote is a coin flip
    far = on_the_fake_side(det.base, 0.6)
    p = det.predict_proba(torch.cat([grey, far]))
    assert p[:, 1].tolist() == [0.5, 0.0]  # abstains on grey, detects the far fake
    assert det.predict(grey).tolist() == [ABSTAIN]
    detected = (p[:, 1] < 0.5).tolist()  # how attack cells count a fake as detected
    assert detected == [False, True]
    labels = np.array([FAKE, REAL])
    m = classification_metrics(labels, np.array([0.5, 0.5]), abstain=np.array([True, True]))
    assert m["accuracy"]["k"] == 0 and m["fake_recall"]["k"] == 0 and m["real_recall"]["k"] == 0
    assert m["abstained"]["k"] == 2
    assert classification_metrics(labels, np.array([0.5, 0.5]))["real_recall"]["k"] == 1  # without: 'real'


def test_votes_depend_on_the_image_only():
    det = apply_defense(linear_detector(), "s", "smoothing", {"sigma": 0.25, "n": 64, "batch": 16}, Path("."))
    x = torch.rand(3, 3, SIZE, SIZE)
    alone = det.votes(x[1:2], 64, "estimate")
    assert np.array_equal(det.votes(x, 64, "estimate")[1], alone[0])
    assert np.array_equal(det.votes(x[[2, 1, 0]], 64, "estimate")[1], alone[0])
    xg = x.clone().requires_grad_(True)
    det(xg)[:, 1].sum().backward()  # the soft smoothed classifier is differentiable
    assert float(xg.grad.abs().sum()) > 0


# ------------------------------------------------------------------ attack-beats-certificate, by hand
def _rows_and_certificates(det: SmoothedDetector, clean: torch.Tensor, adv: torch.Tensor):
    ev = EvaluationConfig(storage="png")
    ids = [f"img{i}" for i in range(len(clean))]
    stored_adv = scoring.stored(adv, ev)
    p_adv = det.predict_proba(stored_adv)[:, 1].numpy()
    metrics = scoring.smoothed_attack_metrics(det, ids, clean, stored_adv, p_adv, ev)
    row = {"target": "m+s", "label": "pgd_l2", "role": "attack", "source": "m+s", "metrics": metrics}
    cert = det.certify(scoring.stored(clean, ev), 16, 2000, 0.001)
    certs = {"m+s": {i: ("fake" if c == FAKE else "abstain" if c == ABSTAIN else "real",
                         None if np.isnan(r) else float(r))
                     for i, c, r in zip(ids, cert["class"], cert["radius"], strict=True)}}
    return row, certs, cert


def test_attack_beats_certificate_fires_on_halved_norms_and_not_on_the_true_ones(monkeypatch):
    """A linear detector smoothed at sigma 0.25: a fake 0.25 from the hyperplane has a certified radius near
    0.25 * Phi^-1(Phi(1)) = 0.25 (less, by the Monte Carlo bound); PGD-L2 through the soft smoothed classifier
    at eps 0.33 crosses it. With the true L2 (about 0.33 > radius) the check is quiet; an accounting that records
    half of it (about 0.17 < radius) is caught."""
    base = linear_detector(seed=3)
    det = apply_defense(base, "s", "smoothing", {"sigma": 0.25, "n": 1000, "alpha": 0.001, "eot": 16},
                        Path("."))
    clean = torch.cat([on_the_fake_side(base, 0.25) for _ in range(2)])
    params = PGDParams(eps=0.33, norm="l2", steps=20, step_size=0.05, random_start=False)
    adv = run_attack("pgd", "native", det, clean, torch.zeros(2, dtype=torch.int64), params)
    row, certs, cert = _rows_and_certificates(det, clean, adv)
    radius = float(cert["radius"][0])
    assert cert["class"].tolist() == [FAKE, FAKE] and 0.15 < radius < 0.3
    sm = row["metrics"]["smoothed"]
    assert sm["vote"] == ["real", "real"] and all(radius < d < 2 * radius for d in sm["l2_from_stored"])
    assert list(attack_beats_certificate([row], certs)) == []  # the true accounting: consistent
    # a deliberately wrong accounting: the attack's L2 recorded at half
    true_l2 = scoring.l2_from_stored
    monkeypatch.setattr(scoring, "l2_from_stored", lambda c, a, e: true_l2(c, a, e) / 2)
    row, certs, _ = _rows_and_certificates(det, clean, adv)
    flags = list(attack_beats_certificate([row], certs))
    assert [f.check for f in flags] == ["attack-beats-certificate"]
    assert "2 of 2" in flags[0].message and flags[0].model == "m+s"


# ------------------------------------------------------------------ suite fields
SUITE = {
    "name": "smooth",
    "seed": 0,
    "seeds": 2,
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 6, "lr": 0.05, "batch_size": 16}},
               "n": {"arch": "tiny", "init_from": "a", "recipe": {"epochs": 3, "lr": 0.05, "batch_size": 16},
                     "defense": {"smoothing": {"sigma": 0.25}}, "seeds": 1, "attacks": ["fmn", "pgd_l2"]}},
    "attacks": {"fgsm": {"attack": "fgsm", "backend": "native", "eps": 0.02},
                "fmn": {"attack": "fmn", "backend": "native", "steps": 15, "max_stepsize": 1.0,
                        "min_stepsize": 0.01, "gamma": 0.05},
                "pgd_l2": {"attack": "pgd", "backend": "native", "norm": "l2", "eps": 0.25, "steps": 8,
                           "step_size": 0.1, "random_start": False, "models": ["n"]}},
    "defenses": {"smooth": {"use": "smoothing", "params": {"sigma": 0.25, "n": 64, "alpha": 0.001, "eot": 4,
                                                           "batch": 64},
                            "applies_to": ["n"], "adaptive": True}},
    "certify": {"n0": 16, "n": 128, "alpha": 0.001},
    "evaluation": {"max_attack_images": 12, "attack_batch_size": 12, "gradient_norm_images": 8, "storage": "png",
                   "checks": {"n": 12, "unbounded": {"attack": "pgd", "backend": "native",
                                                     "params": {"eps": 1.0, "norm": "linf", "steps": 5,
                                                                "step_size": 0.2, "random_start": False}},
                              "convergence": None}},
    "report": {"figures": True},
}


def _write(tmp_path: Path, suite: dict) -> Path:
    path = tmp_path / "smooth.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_a_models_seeds_and_attacks_and_an_attacks_models_restrict_the_plan(tmp_path):
    ls = load_suite(_write(tmp_path, SUITE))
    assert list(ls.models) == ["a", "a@seed1", "n"]  # n has one seed of its own
    assert ls.suite.defenses["smooth"].applies_to == ["n"]
    plan = build_plan(ls, "data", ["x"])
    met = {(c.attack.key, c.source.name, c.target.name) for c in plan.attacks if c.attack.role == "attack"}
    assert met == {("fgsm", "a", "a"), ("fgsm", "a@seed1", "a@seed1"), ("fmn", "a", "a"),
                   ("fmn", "a@seed1", "a@seed1"), ("fmn", "n", "n"), ("fmn", "n", "n+smooth"),
                   ("fmn", "n+smooth", "n+smooth"), ("pgd_l2", "n", "n"), ("pgd_l2", "n", "n+smooth"),
                   ("pgd_l2", "n+smooth", "n+smooth")}
    noise = {c.target.name for c in plan.attacks if c.attack.attack == "noise"}
    assert noise == {"a", "a@seed1"}  # noise at fgsm's L-inf budget only where fgsm runs
    from bench.sections import add_section_cells  # registers the sections (as a run does)

    add_section_cells(ls, plan)
    assert [(c.kind, c.payload["variant"]) for c in plan.sections if c.kind == "certify"] == [("certify", "n+smooth")]
    bad = {**SUITE, "models": {**SUITE["models"], "n": {**SUITE["models"]["n"], "attacks": ["pgd"]}}}
    with pytest.raises(BenchError, match=r"models\.n\.attacks.*unknown attack entry 'pgd'"):
        load_suite(_write(tmp_path, bad))
    bad = {**SUITE, "attacks": {**SUITE["attacks"], "fgsm": {**SUITE["attacks"]["fgsm"], "models": ["m"]}}}
    with pytest.raises(BenchError, match=r"attacks\.fgsm\.models.*unknown model 'm'"):
        load_suite(_write(tmp_path, bad))
    bad = {**SUITE, "models": {**SUITE["models"], "a": {**SUITE["models"]["a"], "seeds": 1},
                               "n": {**SUITE["models"]["n"], "seeds": 2}}}
    with pytest.raises(BenchError, match=r"models\.n\.seeds.*init_from"):
        load_suite(_write(tmp_path, bad))


# ------------------------------------------------------------------ the tiny suite, end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread):
    tmp = tmp_path_factory.mktemp("smooth")
    suite = {**SUITE, "seeds": 1, "models": {"n": {**SUITE["models"]["n"], "init_from": None, "seeds": None,
                                                   "recipe": {"epochs": 8, "lr": 0.05, "batch_size": 16}}},
             "attacks": {k: v for k, v in SUITE["attacks"].items() if k != "fgsm"}}
    path = _write(tmp, suite)
    home, out = tmp / "home", tmp / "lb"
    assert main(["run", str(path), "--home", str(home), "--out", str(out), "--quiet"]) == 0
    return path, home, out


def _cells(home: Path, kind: str) -> list[tuple[dict, dict]]:
    con = sqlite3.connect(home / "results.sqlite")
    rows = [(json.loads(m), {"target": t, "attack_key": a}) for m, t, a in
            con.execute("SELECT metrics, target, attack_key FROM cells WHERE kind = ?", (kind,))]
    con.close()
    return rows


def test_the_certify_cell_matches_a_direct_computation_from_the_same_noise(tiny_run):
    """Redraw each stored fake's selection and estimation noise (seeded as `bench.smoothing.sampling` documents),
    count the trained detector's votes, and bound and convert them with scipy: the cell's classes, nA and radii."""
    from bench.running.runner import prepare  # the run's own context: data, plan and checkpoints

    path, home, _ = tiny_run
    (m, _), = _cells(home, "certify")
    ctx = prepare(load_suite(path), home)
    base = ctx.detector("n")
    x0 = quantise(ctx.attacked.images, "png", 95).float().div(255)
    assert m["images"]["ids"] == list(ctx.attacked.ids) and m["n0"] == 16 and m["n"] == 128

    def votes(img: torch.Tensor, tag: str, count: int) -> np.ndarray:
        h = hashlib.blake2b(f"0:{tag}:".encode(), digest_size=8)
        h.update(img.numpy().astype(np.float32).tobytes())
        g = torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & (2**63 - 1))
        out = np.zeros(2, dtype=np.int64)
        for start in range(0, count, 64):  # the defense's batch: 64 samples per draw
            noise = torch.randn((min(64, count - start), 3, 32, 32), generator=g)
            with torch.no_grad():
                pred = base((img + 0.25 * noise).clamp(0, 1)).argmax(1)
            out += np.bincount(pred.numpy(), minlength=2)
        return out

    abstained = 0
    for i, img in enumerate(x0):
        top = int(np.argmax(votes(img, "select", 16)))
        n_a = int(votes(img, "estimate", 128)[top])
        p_lower = beta.ppf(0.001, n_a, 128 - n_a + 1) if n_a > 0 else 0.0
        assert m["images"]["n_a"][i] == n_a
        if p_lower > 0.5:
            assert m["images"]["class"][i] == ("fake" if top == FAKE else "real")
            assert m["images"]["radius"][i] == pytest.approx(0.25 * norm.ppf(p_lower), rel=1e-5)
        else:
            abstained += 1
            assert m["images"]["class"][i] == "abstain" and m["images"]["radius"][i] is None
    assert m["abstained"]["k"] == abstained
    certified = sum(c == "fake" for c in m["images"]["class"])
    assert m["certified"][0]["k"] == certified  # at radius 0: certified 'fake', abstentions not counted
    assert any(r is not None for r in m["images"]["radius"])  # something was certified


def test_abstentions_count_as_not_detected_in_attack_cells(tiny_run):
    _, home, _ = tiny_run
    smoothed = [(m, c) for m, c in _cells(home, "attack") if c["target"] == "n+smooth"]
    assert smoothed and all("smoothed" in m for m, _ in smoothed)
    for m, _ in smoothed:
        votes = m["smoothed"]["vote"]
        assert m["accuracy"]["k"] == votes.count("fake")  # an abstention is not a detection
    assert any("abstain" in m["smoothed"]["vote"] or "real" in m["smoothed"]["vote"] for m, _ in smoothed)


def test_the_leaderboard_shows_the_bracket_and_no_attack_beats_a_certificate(tiny_run):
    _, home, out = tiny_run
    text = (out / "smooth.md").read_text()
    section = text.split("## Randomized smoothing: certified accuracy under attacked accuracy (L2)")[1]
    section = section.split("\n## ")[0]
    assert "CERTIFY n0=16, n=128, alpha=0.001" in section and "PREDICT with n = 64" in section
    assert "attacked: worst case over the attacks" in section and "bracket width" in section
    assert "fmn, made through the smoothing" in section and "pgd_l2, made through the smoothing" in section
    assert "Median certified radius" in section and (out / "smooth-n-smooth-certified.png").stat().st_size > 1000
    sanity = text.split("## Sanity checks")[1].split("\n## ")[0]
    assert "attack-beats-certificate.md)" in text  # it ran ...
    first_screen = text.split("## Table I")[0]  # the summary row shows both ends of the bracket
    assert re.search(r"certified \d+\.\d\d", first_screen) and "median certified L2 radius" in first_screen
    assert "| [attack-beats-certificate]" not in sanity  # ... and did not fire on the real attacks
    b = Board(load_results(ResultStore(home / "results.sqlite"), "smooth", None), out)
    g = certified_numbers(b)["n+smooth"]
    assert g.budgets[0] == 0.0 and len(g.budgets) == 1 + len(b.s.report.l2_budgets)
    assert len(g.inverted) == len(g.budgets)  # fakes certified at a budget yet counted attacked (PREDICT abstained)
    assert g.median_radius >= 0 and g.median_min_norm_l2 is not None


def test_certify_is_left_out_without_a_smoothed_model_or_with_certify_null(tmp_path):
    from bench.sections import add_section_cells  # registers the sections (as a run does)

    suite = textwrap.dedent("""
        name: plain
        data: {source: synthetic-faces, n: 40, size: 32}
        models: {a: {arch: tiny}}
        attacks: {fgsm: {attack: fgsm, backend: native, eps: 0.02}}
    """)
    (tmp_path / "plain.yaml").write_text(suite)
    ls = load_suite(tmp_path / "plain.yaml")
    plan = build_plan(ls, "data", ["x"])
    add_section_cells(ls, plan)
    assert not [c for c in plan.sections if c.kind == "certify"]
    ls = load_suite(_write(tmp_path, {**SUITE, "certify": None}))
    plan = build_plan(ls, "data", ["x"])
    add_section_cells(ls, plan)
    assert not [c for c in plan.sections if c.kind == "certify"]
