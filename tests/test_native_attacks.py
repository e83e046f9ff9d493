"""Native attacks against ART and Foolbox on the same detector, images and settings."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from bench.attacks import native
from bench.attacks.counting import count_passes
from bench.attacks.params import CWL2Params, FGSMParams, PGDParams
from bench.attacks.registry import get_attack, run_attack
from bench.crosscheck.compare import crosscheck
from bench.data.dataset import ImageSet
from bench.models import create_model
from bench.models.training import Recipe, train_detector

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

SIZE = 16
MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.2, 0.3)  # non-trivial normalisation: every toolkit must apply it


def colour_cue(n: int, seed: int) -> ImageSet:
    """Noise images whose class is a red-versus-blue tint: learnable in a second by the tiny CNN."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, SIZE, SIZE, generator=g) * 0.6 + 0.2
    tint = (y.float() * 2 - 1).view(n, 1, 1, 1) * torch.tensor([0.08, 0.0, -0.08]).view(1, 3, 1, 1)
    return ImageSet((x + tint).clamp(0, 1), y, [str(i) for i in range(n)])


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    det = create_model("tiny", SIZE, MEAN, STD)
    train_detector(det, colour_cue(256, 0), Recipe(epochs=6, batch_size=16, lr=0.01, step_size=100), quiet=True)
    test = colour_cue(12, 1)
    acc = float((det.predict_proba(test.images).argmax(1) == test.labels).float().mean())
    assert acc >= 0.9, f"the test detector did not learn the colour cue (accuracy {acc})"
    return det, test.images, test.labels


@pytest.fixture(scope="module")
def random_init():
    torch.manual_seed(1)
    det = create_model("tiny", SIZE, MEAN, STD).eval()
    g = torch.Generator().manual_seed(2)
    return det, torch.rand(10, 3, SIZE, SIZE, generator=g), torch.randint(0, 2, (10,), generator=g)


def test_native_backends_are_registered_and_declare_eot():
    for name in ("fgsm", "cw_l2", "pgd"):
        backend = get_attack(name).backends["native"]
        assert backend.fn is getattr(native, name) and backend.eot  # it averages gradients over passes (EOT)
        assert not get_attack(name).backends["art"].eot  # a toolkit takes one gradient per step


def test_fgsm_is_eq_1_and_equals_art_and_foolbox(random_init, trained):
    for det, x, y in (random_init, trained):
        p = FGSMParams(eps=0.03)
        xg = x.clone().requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(det(xg), y), xg)[0]
        expected = (x + 0.03 * grad.sign()).clamp(0, 1)
        got = run_attack("fgsm", "native", det, x, y, p)
        assert got.dtype == torch.float32 and got.shape == x.shape
        assert (got - expected).abs().max() <= 1e-6
        for backend in ("art", "foolbox"):
            other = run_attack("fgsm", backend, det, x, y, p)
            assert (got - other).abs().max() <= 1e-6, backend


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.08, 0.02), ("l2", 1.5, 0.4)])
def test_pgd_matches_foolbox_from_the_same_start(trained, norm, eps, step):
    det, x, y = trained
    p = PGDParams(eps=eps, norm=norm, steps=7, step_size=step, random_start=False)
    got = run_attack("pgd", "native", det, x, y, p)
    ref = run_attack("pgd", "foolbox", det, x, y, p)
    assert (got - ref).abs().max() <= 1e-6
    d = (got - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert bool((size <= eps + 1e-5).all()) and got.min() >= 0 and got.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(det(got), y) > F.cross_entropy(det(x), y) + 1.0  # the ascent worked


def test_pgd_random_start_is_seeded_and_projected(trained):
    det, x, y = trained
    p = PGDParams(eps=0.03, norm="linf", steps=2, step_size=0.01, random_start=True)
    torch.manual_seed(5)
    a = run_attack("pgd", "native", det, x, y, p)
    torch.manual_seed(5)
    b = run_attack("pgd", "native", det, x, y, p)
    torch.manual_seed(6)
    c = run_attack("pgd", "native", det, x, y, p)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= 0.03 + 1e-6


# c_min is below the c the images need, as the paper chose its range: ART and Foolbox bisect below c_min
# when c_min already succeeds, the native search stays in [c_min, c_max].
CW_SMALL = CWL2Params(
    confidence=1.0, c_min=0.1, c_max=100.0, binary_search_steps=3, max_iterations=40, learning_rate=0.01
)


def test_cw_l2_is_at_least_as_strong_as_art_and_foolbox(trained):
    det, x, y = trained
    x, y = x[:8], y[:8]
    report = crosscheck(det, x, y, "cw_l2", CW_SMALL, ["native", "art", "foolbox"])
    nat, art, fb = report.results
    assert all(r.ok for r in report.results), [r.error for r in report.results]
    assert int(nat.success.sum()) >= max(int(art.success.sum()), int(fb.success.sum()))
    assert int(nat.success.sum()) >= len(x) - 1
    for ref in (art, fb):
        both = nat.success & ref.success
        if both.any():  # median L2 on the same images
            assert float(nat.l2[both].median()) <= 1.05 * float(ref.l2[both].median()), ref.name
    assert report.verdict_ok, report.to_text()
    # kappa 1 is reachable everywhere, and the report says so
    assert report.reachable_margin is not None and min(report.reachable_margin) >= 1.0
    assert "reached it on 8 of 8 images" in report.to_text()


def test_cw_l2_output_contract(trained):
    det, x, y = trained
    p = CWL2Params(confidence=2.0, c_min=0.01, c_max=0.02, binary_search_steps=2, max_iterations=20)
    adv = run_attack("cw_l2", "native", det, x, y, p)  # c far too small: most images fail
    assert adv.shape == x.shape and adv.dtype == torch.float32 and adv.min() >= 0 and adv.max() <= 1
    logits = det(adv).detach()
    margin = logits[torch.arange(len(y)), 1 - y] - logits[torch.arange(len(y)), y]
    failed = (adv - x).flatten(1).abs().amax(1) == 0
    assert failed.any(), "expected some images to keep the original (no adversarial found)"
    assert bool((margin[~failed] >= 2.0 - 1e-4).all()), "a returned adversarial misses the kappa margin"
    assert torch.equal(adv[failed], x[failed])


def test_cw_l2_settled_images_stop_costing_compute(trained):
    det, x, y = trained
    easy = CWL2Params(
        confidence=0.0, c_min=50.0, c_max=100.0, binary_search_steps=5, max_iterations=40, abort_early=False
    )
    with count_passes(det) as passes:
        adv = run_attack("cw_l2", "native", det, x, y, easy)
    assert bool((det.predict_proba(adv).argmax(1) != y).all())
    # every image succeeds at c_min, so the search settles after one step: 40 iterations, not 5 x 40
    assert passes.forward == passes.backward == 40 * len(x)
    with count_passes(det) as early:
        run_attack("cw_l2", "native", det, x, y, easy.model_copy(update={"abort_early": True}))
    assert early.forward < passes.forward


def test_cw_l2_cannot_beat_the_reachable_margin(trained):
    """The reachability probe bounds CW-L2 from below: a kappa above what the probe reaches leaves CW with
    nothing (originals back), a kappa it reaches on every image is one CW reaches too."""
    from bench.models.diagnostics import reachable_margin

    det, x, y = trained
    x, y = x[:6], y[:6]
    reach = reachable_margin(det, x, y, steps=30, step_size=0.05)
    z_true, z_other = native.true_and_other_logits(det(x).detach(), y)
    assert bool((reach >= z_other - z_true).all())  # the start counts
    far = CWL2Params(confidence=float(reach.max()) * 3 + 10, c_min=1.0, c_max=100.0, binary_search_steps=2,
                     max_iterations=60, learning_rate=0.05)
    assert torch.equal(run_attack("cw_l2", "native", det, x, y, far), x)
    near = far.model_copy(update={"confidence": float(reach.min()) / 4})
    adv = run_attack("cw_l2", "native", det, x, y, near)
    assert bool((adv - x).flatten(1).abs().amax(1).gt(0).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_native_attacks_on_cuda(trained):
    det, x, y = trained
    dev = det.to("cuda")
    try:
        for name, p in (("fgsm", FGSMParams(eps=0.03)), ("pgd", PGDParams(steps=3)), ("cw_l2", CW_SMALL)):
            adv = run_attack(name, "native", dev, x, y, p)
            assert adv.device.type == "cpu" and adv.shape == x.shape
    finally:
        det.to("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cw_l2_cuda_graph_replay_matches_eager_and_counts_every_pass(trained, monkeypatch):
    det, x, y = trained
    dev = det.to("cuda")
    p = CWL2Params(confidence=0.0, c_min=1.0, c_max=100.0, binary_search_steps=2, max_iterations=30, abort_early=False)
    try:
        results = {}
        for graphs in ("1", "0"):
            monkeypatch.setenv("BENCH_CUDA_GRAPHS", graphs)
            with count_passes(dev) as passes:
                results[graphs] = (run_attack("cw_l2", "native", dev, x, y, p), passes.forward, passes.backward)
        (a, fa, ba), (b, fb, bb) = results["1"], results["0"]
        assert (fa, ba) == (fb, bb) and fa >= 30 * len(x)
        assert torch.allclose(a, b, atol=1e-4)
    finally:
        det.to("cpu")
