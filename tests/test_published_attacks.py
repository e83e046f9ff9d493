"""APGD and Square as published: APGD's step-size rule (Croce and Hein 2020, Algorithm 1) against a direct
computation, its highest-loss iterate against the first crossing through 8-bit PNG storage, and Square's
lowest-margin point within the whole query budget."""

from __future__ import annotations

import math

import pytest
import torch

from bench.attacks import apgd, square
from bench.attacks.counting import count_passes
from bench.attacks.params import APGDParams, SquareParams
from bench.data.config import DataConfig
from bench.data.sources import load_data
from bench.defenses.jpeg import to_uint8
from bench.models import create_model
from bench.models.training import Recipe, train_detector

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faces_detector():
    """A tiny detector trained on synthetic faces (32 px) and up to 24 test fakes it detects."""
    train, test = load_data(DataConfig(source="synthetic-faces", n=240, size=32), 0, ".")
    torch.manual_seed(0)
    det = create_model("tiny", 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    train_detector(det, train, Recipe(epochs=10, batch_size=16, lr=0.05), quiet=True)
    det.eval()
    fakes = test.labels == 0
    x, y = test.images[fakes], test.labels[fakes]
    detected = det.predict_proba(x).argmax(1) == y
    assert int(detected.sum()) >= 12, "the test detector did not learn the synthetic faces"
    return det, x[detected][:24], y[detected][:24]


def margin(det, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of the wrong class minus the true one's: > 0 is misclassified, larger is further across."""
    with torch.no_grad():
        z = det(x)
    i = torch.arange(len(y))
    return z[i, 1 - y] - z[i, y]


def png(x: torch.Tensor) -> torch.Tensor:
    return to_uint8(x).float() / 255


# ------------------------------------------------------------------------------------------------ APGD
def test_checkpoints_follow_the_paper():
    p = apgd.checkpoint_fractions()
    assert [round(v, 2) for v in p] == [0.0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99]
    assert apgd.checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd.checkpoints(20) == [0, 5, 9, 12, 14, 16, 18, 19, 20]  # ceil(p_j * 20), by hand
    assert apgd.checkpoints(1) == [0, 1]


def paper_step_sizes(losses: list[float], steps: int, eta0: float) -> list[float]:
    """Algorithm 1's step size after each iterate, computed directly from the loss of each iterate x^(0..N):
    at checkpoint w_j halve when (1) the loss rose over the previous iterate in fewer than 0.75 (w_j - w_{j-1})
    of the steps since w_{j-1}, or (2) eta was not halved at w_{j-1} and f_max is what it was at w_{j-1}. After a
    halving the next step starts from x_max, so its 'previous iterate' has the loss f_max."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = sorted({math.ceil(round(v * steps, 6)) for v in p} - {0})
    eta, f_max, prev = eta0, losses[0], losses[0]
    last, f_max_last, halved_last = 0, losses[0], False
    rose: list[bool] = []
    out = []
    for k in range(1, steps + 1):
        rose.append(losses[k] > prev)
        f_max, prev = max(f_max, losses[k]), losses[k]
        if k in marks:
            cond1 = sum(rose[last:k]) < 0.75 * (k - last)
            cond2 = not halved_last and f_max == f_max_last
            halved_last = cond1 or cond2
            if halved_last:
                eta, prev = eta / 2, f_max
            last, f_max_last = k, f_max
        out.append(eta)
    return out


def rule_step_sizes(losses: torch.Tensor, steps: int, eta0: float) -> torch.Tensor:
    """The attack's `StepSizeRule` fed the same losses (one column per image): eta after each iterate."""
    rule = apgd.StepSizeRule(losses[0], eta0, steps)
    out = []
    for k in range(1, steps + 1):
        rule.observe(losses[k])
        rule.checkpoint(k)
        out.append(rule.eta.clone())
    return torch.stack(out)


def test_step_size_rule_against_a_direct_computation():
    steps, eta0 = 20, 0.04
    rising = [float(k) for k in range(steps + 1)]
    flat = [1.0] * (steps + 1)
    # rises over the previous iterate on 4 of the 5 steps to w_1 = 5 without ever beating f_max = 10 after the
    # first step: the paper does not halve there (counting rises over the best loss, as ART does, would)
    below_best = [0.0, 10.0, 1.0, 2.0, 3.0, 4.0] + [4.0 + 0.1 * k for k in range(1, steps - 4)]
    g = torch.Generator().manual_seed(0)
    noisy = torch.randn(steps + 1, 5, generator=g).cumsum(0).T.tolist()
    cases = [rising, flat, below_best, *noisy]
    got = rule_step_sizes(torch.tensor(cases).T, steps, eta0)
    for i, losses in enumerate(cases):
        assert got[:, i].tolist() == pytest.approx(paper_step_sizes(losses, steps, eta0)), i
    assert got[-1, 0] == eta0  # always rising: never halved
    assert got[-1, 1] == pytest.approx(eta0 / 2**8)  # flat: halved at each of the 8 checkpoints
    assert got[4, 2] == eta0 and got[8, 2] == eta0 / 2  # kept at w_1 = 5; halved at w_2 = 9 (f_max still 10)


def test_apgd_keeps_the_highest_loss_iterate_through_storage(faces_detector):
    """8-bit PNG storage (this branch crafts on the bare detector; storage-aware crafting would make the stored
    image the detector's input): the highest-loss iterate keeps a larger margin after storage than the first
    iterate that crossed the boundary, on the same trajectory."""
    det, x, y = faces_detector
    p = APGDParams(eps=0.03, steps=20, step_size=2.0, random_start=True)
    torch.manual_seed(0)
    best = apgd.apgd_batched(det, x, y, p)
    torch.manual_seed(0)
    first = apgd.apgd_batched(det, x, y, p, first_crossing=True)
    raw_best, raw_first = margin(det, best, y), margin(det, first, y)
    assert bool((raw_best >= raw_first - 1e-5).all())  # the same iterates: the best is at least the first crossing
    assert int((raw_first > 0).sum()) >= len(y) // 2, "pick eps so that most images cross"
    m_best, m_first = margin(det, png(best), y), margin(det, png(first), y)
    assert float(m_best.median()) > float(m_first.median())
    assert int((m_best > 0).sum()) >= int((m_first > 0).sum()) - 1
    assert bool(((best - x).abs().amax(dim=(1, 2, 3)) <= 0.03 + 1e-6).all())


def test_apgd_restarts_keep_each_images_best(faces_detector):
    det, x, y = faces_detector
    one = APGDParams(eps=0.02, steps=5, step_size=2.0, random_start=True)
    torch.manual_seed(1)
    a = apgd.apgd_batched(det, x, y, one)
    torch.manual_seed(1)
    b = apgd.apgd_batched(det, x, y, one.model_copy(update={"restarts": 3}))
    with count_passes(det) as passes:
        torch.manual_seed(1)
        apgd.apgd_batched(det, x, y, one.model_copy(update={"restarts": 3}))
    ce = lambda xa: torch.nn.functional.cross_entropy(det(xa), y, reduction="none").detach()  # noqa: E731
    assert bool((ce(b) >= ce(a) - 1e-5).all())  # the first restart is the single run: the best is never worse
    assert passes.backward == 3 * 6 * len(x)  # every restart on every image: x^(0) and 5 steps each


# ------------------------------------------------------------------------------------------------ Square
def test_square_returns_the_lowest_margin_point_of_its_whole_budget(faces_detector):
    det, x, y = faces_detector
    x, y = x[:8], y[:8]
    p = SquareParams(eps=0.04, queries=60, p_init=0.8, restarts=1)
    seen: list[torch.Tensor] = []
    hook = det.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    try:
        torch.manual_seed(0)
        with count_passes(det) as passes:
            adv = square.square(det, x, y, p)
    finally:
        hook.remove()
    # one query for the clean check, one for the stripes, then one per iteration for every image, crossed or not
    assert passes.forward == len(x) * (2 + p.queries) and passes.backward == 0
    i = torch.arange(len(y))
    queried = torch.stack([z[i, 1 - y] - z[i, y] for z in seen[1:]])  # every queried point's margin, in order
    assert queried.shape == (1 + p.queries, len(x))
    best_so_far = queried.cummax(0).values
    assert margin(det, adv, y).tolist() == pytest.approx(best_so_far[-1].tolist(), abs=1e-5)
    crossed = (best_so_far > 0).any(0)
    assert int(crossed.sum()) >= 1, "pick eps so that some image crosses within the budget"
    first = (best_so_far > 0).float().argmax(0)
    at_crossing = best_so_far[first, i]
    assert float((best_so_far[-1] - at_crossing)[crossed].sum()) > 0  # it kept improving after crossing
    assert bool(((adv - x).abs().amax(dim=(1, 2, 3)) <= 0.04 + 1e-6).all())


def test_square_restarts_keep_each_images_lowest_margin(faces_detector):
    det, x, y = faces_detector
    x, y = x[:8], y[:8]
    p = SquareParams(eps=0.02, queries=20, p_init=0.8, restarts=1)
    torch.manual_seed(3)
    one = square.square(det, x, y, p)
    torch.manual_seed(3)
    two = square.square(det, x, y, p.model_copy(update={"restarts": 2}))
    assert bool((margin(det, two, y) >= margin(det, one, y) - 1e-5).all())
