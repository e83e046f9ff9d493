"""APGD-CE, Square, FMN and DDN: native against the toolkits on a trained detector, and every registered
attack and backend run the same way (output contract, budget, box)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_native_attacks import MEAN, SIZE, STD, colour_cue

from bench.attacks import apgd, min_norm, square
from bench.attacks.counting import count_passes
from bench.attacks.registry import get_attack, list_attacks, run_attack
from bench.models import create_model
from bench.models.training import Recipe, train_detector

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # slow: trains (also run at one thread)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    det = create_model("tiny", SIZE, MEAN, STD)
    train_detector(det, colour_cue(256, 0), Recipe(epochs=6, batch_size=16, lr=0.01, step_size=100), quiet=True)
    test = colour_cue(16, 1)
    assert bool((det.predict_proba(test.images).argmax(1) == test.labels).all())
    return det.eval(), test.images, test.labels


def _run(name: str, backend: str, det, x, y, params, seed: int = 0):
    torch.manual_seed(seed)
    np.random.seed(seed)
    with count_passes(det) as passes:
        adv = run_attack(name, backend, det, x, y, params)
    success = det.predict_proba(adv).argmax(1) != y
    d = (adv - x).flatten(1)
    return adv, success, d.norm(dim=1), d.abs().amax(dim=1), passes


def test_new_native_backends_are_registered():
    assert get_attack("apgd").backends["native"].fn is apgd.apgd
    assert get_attack("square").backends["native"].fn is square.square
    assert get_attack("fmn").backends["native"].fn is min_norm.fmn
    assert get_attack("ddn").backends["native"].fn is min_norm.ddn
    for name, toolkit in (("apgd", "art"), ("square", "art"), ("fmn", "foolbox"), ("ddn", "foolbox")):
        assert {"native", toolkit} <= set(get_attack(name).backends), name
    assert get_attack("fmn").family == get_attack("ddn").family == "minimum-norm"


def test_apgd_checkpoints_follow_the_paper():
    assert apgd.checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("norm,eps", [("linf", 0.06), ("linf", 0.08), ("l2", 1.5)])
def test_apgd_native_matches_art(trained, norm, eps):
    det, x, y = trained
    p = get_attack("apgd").params(eps=eps, norm=norm, steps=20, restarts=1, step_size=2.0, random_start=True)
    _, s_nat, l2_nat, linf_nat, c_nat = _run("apgd", "native", det, x, y, p)
    _, s_art, _, _, c_art = _run("apgd", "art", det, x, y, p)
    assert float(s_nat.float().mean()) >= float(s_art.float().mean()) - 1 / 16  # one image of slack
    size = linf_nat if norm == "linf" else l2_nat
    assert bool((size <= eps + 1e-5).all())
    # native runs every step on every image (it returns the highest-loss iterate), never re-evaluating a point:
    # x^(0) and 20 steps, one forward and backward each (plus the clean check), fewer forward passes than ART
    assert c_nat.backward == 21 * len(x) and c_nat.forward == 22 * len(x) <= c_art.forward


def test_weakened_apgd_is_weaker(trained):
    det, x, y = trained
    p = get_attack("apgd").params(eps=0.08, steps=20, step_size=2.0)
    _, strong, *_ = _run("apgd", "native", det, x, y, p)
    _, weak, *_ = _run("apgd", "native", det, x, y, p.model_copy(update={"step_size": 0.02}))
    assert int(strong.sum()) == len(x) and int(weak.sum()) < len(x) // 2


def test_square_native_matches_art(trained):
    det, x, y = trained
    p = get_attack("square").params(eps=0.1, queries=300, p_init=0.8, restarts=1)
    _, s_nat, _, linf_nat, c_nat = _run("square", "native", det, x, y, p)
    _, s_art, _, linf_art, c_art = _run("square", "art", det, x, y, p)
    assert float(s_nat.float().mean()) >= float(s_art.float().mean()) - 2 / 16
    assert bool((linf_nat <= 0.1 + 1e-6).all()) and bool((linf_art <= 0.1 + 1e-6).all())
    # score-based: no backward pass; each query is one forward pass of one image (native: the whole budget)
    assert c_nat.backward == 0 and c_art.backward == 0
    assert c_nat.forward == len(x) * (2 + 300)


def test_square_queries_every_image_for_its_whole_budget(trained):
    det, x, y = trained
    p = get_attack("square").params(eps=0.3, queries=50)
    _, success, *_, passes = _run("square", "native", det, x, y, p)
    n, failed = len(x), int((~success).sum())
    assert failed < n // 2
    # one query per image for the clean check and the stripes, then one per iteration, fooled or not (the
    # largest margin survives storage best); the reference stops an image at its first success
    assert passes.forward == n * (2 + 50)


@pytest.mark.parametrize("name", ["fmn", "ddn"])
def test_min_norm_native_matches_foolbox(trained, name):
    det, x, y = trained
    p = get_attack(name).params(steps=50)
    adv, s_nat, l2_nat, _, c_nat = _run(name, "native", det, x, y, p)
    _, s_fb, l2_fb, _, c_fb = _run(name, "foolbox", det, x, y, p)
    assert int(s_nat.sum()) >= int(s_fb.sum()) and int(s_nat.sum()) >= len(x) - 1
    both = s_nat & s_fb
    assert float(l2_nat[both].median()) <= 1.05 * float(l2_fb[both].median())
    # one forward and backward per step, plus one forward on the last iterate (Foolbox: one check forward)
    assert (c_nat.forward, c_nat.backward) == (c_fb.forward, c_fb.backward) == (51 * len(x), 50 * len(x))
    assert torch.equal(adv[~s_nat], x[~s_nat])  # no adversarial: the original comes back


# Small settings for every registered attack: a new attack must add its own here.
SMALL = {
    "fgsm": {"eps": 0.03},
    "pgd": {"eps": 0.03, "steps": 3, "step_size": 0.01},
    "cw_l2": {"confidence": 0.0, "c_min": 1.0, "c_max": 10.0, "binary_search_steps": 2, "max_iterations": 5},
    "apgd": {"eps": 0.03, "steps": 5},
    "square": {"eps": 0.03, "queries": 10},
    "fmn": {"steps": 5},
    "ddn": {"steps": 5},
    "ensemble": {"eps": 0.05, "members": {"fgsm": {"attack": "fgsm", "backend": "native"},
                                          "apgd": {"attack": "apgd", "backend": "native", "params": {"steps": 3}}}},
}
BUILT_IN = [(a.name, b) for a in list_attacks() for b in sorted(a.backends) if a.name in SMALL]


def test_every_built_in_attack_has_small_settings():
    built_in = {a.name for a in list_attacks() if a.params.__module__ == "bench.attacks.params"}
    assert built_in <= set(SMALL), sorted(built_in - set(SMALL))


@pytest.mark.parametrize("name,backend", BUILT_IN, ids=[f"{a}-{b}" for a, b in BUILT_IN])
def test_every_attack_and_backend_keeps_the_contract(trained, name, backend):
    """Every registered attack, every backend, called the same way (torchattacks style): same shape,
    float32 on the CPU, inside [0, 1], inside its budget (in its norm), images never made worse than x."""
    det, x, y = trained
    x, y = x[:6], y[:6]
    spec = get_attack(name)
    p = spec.params.model_validate(SMALL[name])
    adv = run_attack(name, backend, det, x, y, p)
    assert adv.shape == x.shape and adv.dtype == torch.float32 and adv.device.type == "cpu"
    assert bool(torch.isfinite(adv).all()) and float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    budget = spec.budget_of(p)
    if budget is not None:
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if spec.norm_of(p) == "linf" else d.norm(dim=1)
        assert bool((size <= budget + 1e-5).all()), (name, backend, float(size.max()))


L2_MEMBERS = {
    "ddn": {"attack": "ddn", "backend": "native", "params": {"steps": 30}},
    "pgd": {"attack": "pgd", "backend": "native", "params": {"steps": 10, "step_size": 0.3}},
    "apgd": {"attack": "apgd", "backend": "native", "params": {"steps": 10, "random_start": False}},
    "fmn": {"attack": "fmn", "backend": "native", "params": {"steps": 30}},
}


def test_ensemble_is_never_weaker_than_any_member(trained):
    det, x, y = trained
    eps = 1.45
    p = get_attack("ensemble").params(eps=eps, norm="l2", members=L2_MEMBERS)
    assert [k for k, *_ in p.ordered()] == ["pgd", "apgd", "ddn", "fmn"]  # cheapest first, stable
    assert get_attack("ensemble").family_of(p) == "iterative"
    with count_passes(det) as passes:
        adv = run_attack("ensemble", "native", det, x, y, p)
    d = (adv - x).flatten(1).norm(dim=1)
    assert bool((d <= eps + 1e-5).all())
    robust = det.predict_proba(adv).argmax(1) == y
    alone = {}
    for key, attack, backend, mp in p.ordered():
        xa = run_attack(attack, backend, det, x, y, mp)
        alone[key] = (det.predict_proba(xa).argmax(1) == y) | ((xa - x).flatten(1).norm(dim=1) > eps + 1e-5)
        assert int(robust.sum()) <= int(alone[key].sum()), key
    assert bool((robust <= torch.stack(list(alone.values())).all(0)).all())  # image by image
    assert 0 < int(robust.sum()) < len(x), "pick eps so that the members disagree"
    # later members only see the images earlier ones left: fewer passes than running all on all images
    assert passes.forward < len(x) * sum(mp.passes_per_image() for *_, mp in p.ordered()) / 2


def test_ensemble_members_are_validated():
    spec = get_attack("ensemble")
    with pytest.raises(ValueError, match="exceeds the ensemble's eps"):
        spec.params(eps=0.01, members={"a": {"attack": "fgsm", "params": {"eps": 0.02}}})
    with pytest.raises(ValueError, match="attacks in l2, the ensemble in linf"):
        spec.params(eps=0.01, members={"a": {"attack": "fmn"}})
    with pytest.raises(ValueError, match="unknown attack"):
        spec.params(eps=0.01, members={"a": {"attack": "nope"}})
    with pytest.raises(ValueError, match="no backend"):
        spec.params(eps=0.01, members={"a": {"attack": "fgsm", "backend": "cleverhans"}})
    p = spec.params(eps=0.01, members={"a": {"attack": "fgsm"}})
    assert spec.family_of(p) == "single-step" and p.ordered()[0][3].eps == 0.01


def test_cw_line_search_reaches_a_far_kappa_as_art_does(trained):
    """At a logit margin far from the images, Adam at lr 0.01 runs out of iterations; the optional line-search
    step rule reaches it on as many images as ART's optimiser, at no larger a median L2 (5% slack)."""
    from bench.attacks.params import CWL2Params
    from bench.models.diagnostics import reachable_margin

    det, x, y = trained
    x, y = x[:8], y[:8]
    kappa = 0.8 * float(reachable_margin(det, x, y).min())
    base = dict(confidence=kappa, c_min=10.0, c_max=1000.0, binary_search_steps=2, max_iterations=30,
                learning_rate=0.01, abort_early=False)
    adam = CWL2Params(**base)
    assert "step_rule" not in adam.model_dump()  # the default leaves stored cells' keys as they were
    line = CWL2Params(**base, step_rule="line_search")
    assert CWL2Params.model_validate(line.model_dump()).step_rule == "line_search"

    def reached(backend, p):
        adv = run_attack("cw_l2", backend, det, x, y, p)
        logits = det(adv).detach()
        margin = logits[torch.arange(len(y)), 1 - y] - logits[torch.arange(len(y)), y]
        ok = margin >= kappa - 1e-4
        return ok, (adv - x).flatten(1).norm(dim=1)

    ok_adam, _ = reached("native", adam)
    ok_line, l2_line = reached("native", line)
    ok_art, l2_art = reached("art", adam)
    assert int(ok_adam.sum()) < int(ok_art.sum())
    assert int(ok_line.sum()) >= int(ok_art.sum()) >= 6
    both = ok_line & ok_art
    assert float(l2_line[both].median()) <= 1.05 * float(l2_art[both].median())
