"""Attacks made through what is scored: JPEG q95 storage, a tiny detector trained here on 32 px synthetic faces.

The storage layer's forward is Pillow's codec; its gradient is a model (`bench.attacks.storage`). The craft path
(`bench.cells.craft.craft`) makes a point's examples on the source behind that layer (storage-aware) or on the
bare source (storage-unaware, the paper's setting), and delivers 8-bit images within the point's budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bench.attacks.delivery import deliver, grid_eps, on_grid
from bench.attacks.ensemble import worst_case
from bench.attacks.registry import get_attack, run_attack
from bench.attacks.storage import Storage, StorageLayer, quantise, stored_detector, to_uint8
from bench.cells.craft import attack_detector, craft
from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.models import create_model
from bench.models.training import Recipe, train_detector
from bench.suite.load import load_suite
from bench.suite.loaded import AttackPoint
from bench.suite.planner import build_plan

pytestmark = pytest.mark.usefixtures("one_thread")

JPEG = Storage("jpeg", 95)
SIZE = 32


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained on 400 synthetic faces; the test fakes it detects (at least 24 of 40)."""
    images, labels, ids = generate_synthetic_faces(480, SIZE, 0)
    data = ImageSet.from_uint8(images, labels, ids)
    torch.manual_seed(0)
    det = create_model("tiny", SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train_detector(det, data.subset(list(range(400))), Recipe(epochs=10, batch_size=16, lr=0.05, step_size=100),
                   quiet=True)
    det.eval()
    fakes = data.subset(list(range(400, 480))).only(0)
    detected = det.predict_proba(fakes.images).argmax(1) == fakes.labels
    assert int(detected.sum()) >= 24, f"the test detector detects only {int(detected.sum())} of 40 fakes"
    return det, fakes.images[detected], fakes.labels[detected]


def point(attack: str, backend: str = "native", aware: bool = True, **params) -> AttackPoint:
    spec = get_attack(attack)
    p = spec.params.model_validate(params)
    return AttackPoint(attack, attack, backend, p.model_dump(), True, (), spec.title, spec.family_of(p),
                       spec.norm_of(p), spec.budget, spec.deterministic_for(p), storage_aware=aware)


def fooled_after_storage(det, u8: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Whether the bare detector misclassifies the stored (JPEG q95) image of each delivered uint8 image."""
    return det.predict_proba(JPEG.store(u8).float() / 255).argmax(1) != y


def test_the_layer_forward_is_the_stored_image_and_its_gradient_flows(trained):
    det, x, _ = trained
    layer = StorageLayer(JPEG)
    stored = quantise(x, "jpeg", 95).float() / 255
    xg = x.clone().requires_grad_(True)
    out = layer(xg)
    assert torch.equal(out.detach(), stored) and torch.equal(layer(x), stored)  # Pillow's output, with grad or not
    (g,) = torch.autograd.grad(out.sum(), xg)
    assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    assert torch.equal(StorageLayer(Storage("png"))(x), to_uint8(x).float() / 255)
    sdet = stored_detector(det, JPEG)
    assert torch.equal(sdet.predict_proba(x), det.predict_proba(stored))  # the detector scores what is stored


@pytest.mark.parametrize("attack", ["fmn", "ddn"])
def test_min_norm_attacks_survive_storage_when_made_through_it(trained, attack):
    """FMN and DDN (native, 25 steps) made through JPEG q95 storage fool, after storage, at least 90% of the
    detected fakes the same attack fools before storage.

    Before storage: the same attack with the same parameters made on the bare detector (storage-unaware), its
    float output judged by the bare detector: what the attack does when nothing is stored. After storage: the
    storage-aware attack's delivered 8-bit image through Pillow's JPEG q95, judged by the bare detector. The
    storage-unaware attack's own examples mostly do not survive storage (which is why it matters)."""
    det, x, y = trained
    unaware = craft(point(attack, aware=False, steps=25), get_attack(attack).params(steps=25), det, JPEG, x, y)
    before = det.predict_proba(unaware.raw).argmax(1) != y
    aware = craft(point(attack, steps=25), get_attack(attack).params(steps=25), det, JPEG, x, y)
    after = fooled_after_storage(det, aware.delivered, y)
    n_before, n_after = int(before.sum()), int(after.sum())
    assert n_before >= 0.9 * len(x), f"{attack} fooled only {n_before} of {len(x)} before storage"
    assert n_after >= 0.9 * n_before, f"{attack}: {n_after} fooled after storage, {n_before} before"
    assert int(fooled_after_storage(det, unaware.delivered, y).sum()) <= 0.5 * n_before  # storage undoes them
    assert int(aware.passes.backward) > 0  # made through the layer, with gradients


BOUNDED = [
    ("fgsm", "native", {"eps": 0.01}), ("fgsm", "art", {"eps": 0.01}), ("fgsm", "foolbox", {"eps": 0.01}),
    ("pgd", "native", {"eps": 0.01, "steps": 3, "step_size": 0.004}),
    ("pgd", "art", {"eps": 0.01, "steps": 3, "step_size": 0.004}),
    ("pgd", "foolbox", {"eps": 0.01, "steps": 3, "step_size": 0.004}),
    ("pgd", "native", {"eps": 0.5, "norm": "l2", "steps": 3, "step_size": 0.2}),
    ("pgd", "foolbox", {"eps": 0.5, "norm": "l2", "steps": 3, "step_size": 0.2}),
    ("apgd", "native", {"eps": 0.01, "steps": 3}),
    ("square", "native", {"eps": 0.01, "queries": 5}),
]


@pytest.mark.parametrize("attack,backend,params", BOUNDED, ids=[f"{a}-{b}-{p.get('norm', 'linf')}"
                                                                for a, b, p in BOUNDED])
def test_a_bounded_attack_delivers_within_its_budget(trained, attack, backend, params):
    """eps 0.01 is 2.55 levels of 8 bits: rounding x + eps gives 3 levels, over the budget. The attack runs at
    2/255 (its grid), so its rounded output is inside the budget and the image it judged is the one delivered."""
    det, x, y = trained
    x, y = x[:8], y[:8]
    ap = point(attack, backend, **params)
    made = craft(ap, ap.params_model(), det, JPEG, x, y)
    d = (made.delivered.float() / 255 - x).flatten(1)
    eps = params["eps"]
    if params.get("norm", "linf") == "linf":
        assert float(d.abs().max()) <= eps + 1e-6
        assert torch.equal(made.delivered, to_uint8(made.raw))  # rounding alone: nothing projected after
        assert float(made.raw.sub(x).abs().max()) <= grid_eps(eps) + 1e-6
    else:
        assert float(d.norm(dim=1).max()) <= eps + 1e-5
    assert made.budget is not None and made.budget["over"] == 0 and made.budget["max"] <= eps + 1e-5


def test_delivery_projects_onto_the_budget_on_the_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=g).float() / 255
    sign = torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
    over = (x + 0.01 * sign).clamp(0, 1)  # rounds to 3 levels away, over eps = 2.55 levels
    assert float((to_uint8(over).float() / 255 - x).abs().max()) > 0.01
    u8 = deliver(over, x, 0.01, "linf")
    assert float((u8.float() / 255 - x).abs().max()) <= 0.01
    d = torch.randn(x.shape, generator=g)
    adv = (x + 0.5 * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    u8 = deliver(adv, x, 0.5, "l2")
    size = (u8.float() / 255 - x).flatten(1).norm(dim=1)
    assert bool((size <= 0.5 + 1e-5).all()) and bool((size > 0.4).all())  # shrunk to fit, not to nothing
    assert torch.equal(deliver(adv, x), to_uint8(adv))  # no budget: rounding only
    p = get_attack("ensemble").params(eps=0.01, members={"f": {"attack": "fgsm", "params": {"eps": 0.01}}})
    grid = on_grid("ensemble", p)
    assert grid.eps == grid.ordered()[0][3].eps == 2 / 255  # the members' explicit budgets too


def test_the_ensemble_is_never_above_a_member_on_any_image(trained):
    """With JPEG storage and randomised members (PGD with a random start, Square), the ensemble's stored output
    fools the detector on every image that any member's delivered output, as it ran inside the ensemble, fooled;
    every image it leaves detected was attacked by every member; and per image it is never above the
    deterministic member (FGSM) run alone."""
    det, x, y = trained
    eps = 0.03
    members = {"fgsm": {"attack": "fgsm"},
               "pgd": {"attack": "pgd", "params": {"steps": 4, "step_size": 0.01, "random_start": True}},
               "square": {"attack": "square", "params": {"queries": 30, "p_init": 0.8, "restarts": 1}}}
    p = on_grid("ensemble", get_attack("ensemble").params(eps=eps, members=members))
    sdet = stored_detector(det, JPEG)
    torch.manual_seed(0)
    trace: dict = {}
    adv = worst_case(sdet, x, y, p, trace)
    delivered = deliver(adv, x, eps)
    assert torch.equal(delivered, to_uint8(adv))  # the ensemble's output is delivered already
    robust = ~fooled_after_storage(det, delivered, y)
    assert set(trace) == {"fgsm", "pgd", "square"}
    for key, (idx, out) in trace.items():
        member_fooled = fooled_after_storage(det, to_uint8(out), y[idx])
        assert not bool((robust[idx] & member_fooled).any()), key
        ran = torch.zeros(len(x), dtype=torch.bool)
        ran[idx] = True
        assert not bool((robust & ~ran).any()), f"{key} skipped an image the ensemble leaves detected"
    fgsm = craft(point("fgsm", eps=eps), get_attack("fgsm").params(eps=eps), det, JPEG, x, y)
    assert not bool((robust & fooled_after_storage(det, fgsm.delivered, y)).any())
    assert 0 < int(robust.sum()) < len(x), "pick eps so that the members disagree"


def test_the_layers_gradient_points_the_right_way(trained):
    """A step of L2 0.5 along the storage layer's gradient raises the cross-entropy of the real (Pillow) stored
    image more than each of three random steps of the same norm on most images, and more than a step along the
    gradient of kornia's differentiable JPEG (the gradient this layer does not use: bench.attacks.storage)."""
    jpeg_codec_differentiable = pytest.importorskip("kornia.enhance").jpeg_codec_differentiable
    det, x, y = trained

    def real_loss(img: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(det(JPEG.stored(img.clamp(0, 1))), y, reduction="none")

    def gradient(forward) -> torch.Tensor:
        xg = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(forward(xg), y, reduction="sum"), xg)[0]

    def gain(direction: torch.Tensor) -> torch.Tensor:
        return real_loss(x + 0.5 * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)) - base

    base = real_loss(x)
    ours = gain(gradient(stored_detector(det, JPEG)))
    kornia = gain(gradient(lambda z: det(jpeg_codec_differentiable(z, torch.tensor([95.0])))))
    g = torch.Generator().manual_seed(0)
    random = torch.stack([gain(torch.randn(x.shape, generator=g)) for _ in range(3)])
    assert float((ours > random.max(0).values).float().mean()) >= 0.8
    assert float((ours > kornia).float().mean()) >= 0.75


SUITE = """
name: aware
data: {source: synthetic-faces, n: 40, size: 32}
models: {a: {arch: tiny}}
attacks:
  fgsm: {attack: fgsm, backend: native, eps: 0.02}
  fgsm-paper: {attack: fgsm, backend: native, eps: 0.02, storage_aware: false}
evaluation: {storage: jpeg, jpeg_quality: 95}
"""


def test_storage_unaware_reproduces_the_bare_attack_under_another_key(trained, tmp_path: Path):
    det, x, y = trained
    path = tmp_path / "aware.yaml"
    path.write_text(SUITE)
    ls = load_suite(path)
    aware, unaware = ls.attacks
    assert (aware.storage_aware, unaware.storage_aware) == (True, False)
    assert aware.params == unaware.params
    crafts = {c.attack.key: c.key for c in build_plan(ls, "data", ["x"]).crafts.values() if c.attack.role == "attack"}
    assert crafts["fgsm"] != crafts["fgsm-paper"]
    everywhere_unaware = load_suite(path, extra={"evaluation": {"storage_aware": False}})
    assert all(not a.storage_aware for a in everywhere_unaware.attacks)
    # storage-unaware: made on the bare detector, exactly as before (FGSM at 0.02 = 5.1 levels: its grid is 5/255)
    assert attack_detector(unaware, det, JPEG) is det
    made = craft(unaware, unaware.params_model(), det, JPEG, x, y)
    bare = run_attack("fgsm", "native", det, x, y, get_attack("fgsm").params(eps=0.02))
    assert torch.equal(made.delivered, to_uint8(bare))
    through = craft(aware, aware.params_model(), det, JPEG, x, y)
    assert not torch.equal(through.delivered, made.delivered)
    assert np.isclose(made.budget["max"], 5 / 255) and np.isclose(through.budget["max"], 5 / 255)


def test_a_plan_stored_before_the_flag_reads_as_storage_unaware():
    ap = point("fgsm", eps=0.02)
    old = {k: v for k, v in ap.as_dict().items() if k != "storage_aware"}
    assert AttackPoint.from_dict(old).storage_aware is False
    assert AttackPoint.from_dict(ap.as_dict()).storage_aware is True
