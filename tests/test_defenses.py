"""Defenses: the Lipschitz regulariser against finite differences, blur statistics, the JPEG example
through ART, the input-gradient diagnostic, the loader and contract checks on users' defenses."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap

os.environ.setdefault("ART_DATA_PATH", os.path.join(tempfile.gettempdir(), "bench-tests-art"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.data.dataset import ImageSet  # noqa: E402
from bench.defenses.blur import BlurAugmentation, gaussian_blur, scaled_sigma_range  # noqa: E402
from bench.defenses.contract import check_defense  # noqa: E402
from bench.defenses.lipschitz import LipschitzRegularisation  # noqa: E402
from bench.defenses.registry import (  # noqa: E402
    create_defense,
    defense_kind,
    list_defenses,
    register_defense,
    resolve_defense_class,
)
from bench.errors import BenchError, ContractError  # noqa: E402
from bench.models import create_model  # noqa: E402
from bench.models.detector import Detector, ModelSpec  # noqa: E402
from bench.models.diagnostics import input_gradient_norm  # noqa: E402
from bench.models.training import Recipe, train_detector  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(size: int = 16, seed: int = 0, double: bool = False):
    torch.manual_seed(seed)
    det = create_model("tiny", input_size=size, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).eval()
    return det.double() if double else det


def _images(n: int, size: int = 16, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- Lipschitz regulariser


def _fd_logit_jacobian(det, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central finite differences: B x C x N."""
    b, n = x.shape[0], x[0].numel()
    out = []
    eye = torch.eye(n, dtype=x.dtype).view(n, *x.shape[1:])
    with torch.no_grad():
        for i in range(b):
            plus = det(x[i : i + 1] + h * eye)
            minus = det(x[i : i + 1] - h * eye)
            out.append(((plus - minus) / (2 * h)).T)
    return torch.stack(out)


def test_lipschitz_penalty_matches_finite_differences():
    det = _tiny(size=8, double=True)
    x = _images(3, size=8, dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    lam = 50.0
    reg = LipschitzRegularisation(lam)
    assert reg.needs_input_grad()
    xg = x.clone().requires_grad_(True)
    value = reg.extra_loss(det, xg, y, det(xg))
    jac = _fd_logit_jacobian(det, x)
    c, n = jac.shape[1], jac.shape[2]
    expected = lam / (c * n) * jac.pow(2).sum() / len(x)
    assert value.ndim == 0 and float(expected) > 0
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-6)
    assert reg.last_penalty == pytest.approx(float(expected) / lam, rel=1e-6)


def test_lipschitz_penalty_is_differentiable_in_the_weights():
    """Double backprop: the penalty's gradient in the weights matches a finite difference."""
    det = _tiny(size=8, seed=1, double=True)
    x = _images(2, size=8, seed=1, dtype=torch.float64)
    reg = LipschitzRegularisation(5.0)
    params = list(det.parameters())
    direction = [
        torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=p.dtype) for i, p in enumerate(params)
    ]

    def penalty() -> torch.Tensor:
        xg = x.clone().requires_grad_(True)
        return reg.extra_loss(det, xg, torch.zeros(2, dtype=torch.int64), det(xg))

    grads = torch.autograd.grad(penalty(), params, allow_unused=True)  # the last bias does not enter
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True) if g is not None)
    h = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.add_(h * d)
    up = float(penalty().detach())
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.sub_(2 * h * d)
    down = float(penalty().detach())
    assert float(analytic) == pytest.approx((up - down) / (2 * h), rel=1e-4)


def test_lipschitz_zero_lambda_is_plain_training_and_params_are_checked():
    reg = create_defense("lipschitz", {"lambda": 0}, where="models.r.defense")
    assert not reg.needs_input_grad()
    det = _tiny()
    x = _images(2)
    assert reg.extra_loss(det, x, torch.zeros(2, dtype=torch.int64), det(x)) is None
    assert create_defense("lipschitz", {"lambda": 500}, where="w").lam == 500.0
    for bad in ({"lambda": -1}, {"lambda": "big"}, {"lamda": 5}):
        with pytest.raises(BenchError) as err:
            create_defense("lipschitz", bad, where="models.r18.defense.lipschitz")
        assert err.value.where == "models.r18.defense.lipschitz"


def _easy(n: int, size: int, seed: int) -> ImageSet:
    """Noise images whose class is a colour cast (fake redder, real bluer): learnt in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    cast = torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)
    x = 0.5 + 0.15 * torch.randn(n, 3, size, size, generator=g)
    x = x + torch.where(labels.view(-1, 1, 1, 1) == 0, cast, -cast)
    return ImageSet(x.clamp(0, 1), labels, [str(i) for i in range(n)])


def _plain_cnn(size: int = 16) -> Detector:
    """A small CNN without batch norm: the regulariser's effect, undiluted by batch statistics (training
    mode normalises by the batch, evaluation by running averages)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    return Detector(net, ModelSpec(arch="plain", input_size=size, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)))


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_lipschitz_training_lowers_the_input_gradient_norm():
    """Through the real training loop: same init and data order, lambda 0 vs 5000."""
    train, test = _easy(64, 16, seed=0), _easy(32, 16, seed=1)
    recipe = Recipe(epochs=10, batch_size=16, lr=0.05)
    norms = {}
    for lam in (0.0, 5000.0):
        det = _plain_cnn(size=16)
        losses = train_detector(det, train, recipe, seed=0, defense=LipschitzRegularisation(lam), quiet=True)
        assert all(math.isfinite(v) for v in losses)
        accuracy = float((det.predict_proba(test.images).argmax(1) == test.labels).float().mean())
        assert accuracy >= 0.9
        norms[lam], per_image = input_gradient_norm(det, test, batch_size=8)
        assert per_image.shape == (32,)
    assert norms[5000.0] < 0.5 * norms[0.0]


# --------------------------------------------------------------------------- diagnostics


def test_input_gradient_norm_is_the_frobenius_norm_of_the_logit_jacobian():
    det = _tiny(size=12)
    x = _images(5, size=12)
    mean, per_image = input_gradient_norm(det, x, batch_size=2)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda z: det(z.unsqueeze(0))[0], x[i])
        assert per_image[i] == pytest.approx(float(jac.norm()), rel=1e-4)
    assert mean == pytest.approx(per_image.mean())
    mean_all, _ = input_gradient_norm(det, ImageSet(x, torch.zeros(5, dtype=torch.int64), list("abcde")), 64)
    assert mean_all == pytest.approx(mean, rel=1e-5)
    assert not det.training


# --------------------------------------------------------------------------- blur


def test_gaussian_blur_matches_torchvision_and_keeps_constants():
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    x = _images(3, size=32)
    for sigma in (0.6, 1.5):
        r = math.ceil(3 * sigma)
        ours = gaussian_blur(x, sigma)
        ref = tv_blur(x, [2 * r + 1, 2 * r + 1], [sigma, sigma])
        assert torch.allclose(ours[..., r:-r, r:-r], ref[..., r:-r, r:-r], atol=1e-5)
    flat = torch.full((2, 3, 10, 10), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    per_image = gaussian_blur(x, torch.tensor([0.0, 0.6, 1.5]))
    assert torch.equal(per_image[0], x[0])
    assert torch.allclose(per_image[2], gaussian_blur(x[2:3], 1.5)[0], atol=1e-6)
    # image 1 gets a longer kernel (set by the batch's largest sigma): equal up to the 3-sigma tail mass
    assert torch.allclose(per_image[1], gaussian_blur(x[1:2], 0.6)[0], atol=5e-3)


def test_blur_sigma_range_scales_with_image_size():
    assert scaled_sigma_range(368, 300) == pytest.approx((3.0, 5.0))
    lo, hi = scaled_sigma_range(64, 64)
    assert (lo, hi) == pytest.approx((3 * 64 / math.sqrt(368 * 300), 5 * 64 / math.sqrt(368 * 300)))
    assert BlurAugmentation().sigma_range(64, 64) == (lo, hi)
    assert BlurAugmentation(sigma=[1, 2]).sigma_range(64, 64) == (1.0, 2.0)


def test_blur_augmentation_statistics_and_determinism():
    aug = BlurAugmentation(fraction=0.4, sigma=(1.0, 2.0))  # (the default range is < 0.25 px at 16 x 16)
    x = _images(2000, size=16)
    y = torch.zeros(2000, dtype=torch.int64)
    out = aug.augment(x, y, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    changed = (out != x).flatten(1).any(dim=1)
    assert abs(float(changed.float().mean()) - 0.4) < 0.035  # 3 binomial standard deviations
    chosen, sigma = aug.draw(2000, 16, 16, torch.Generator().manual_seed(7))
    assert torch.equal(changed, chosen)
    lo, hi = aug.sigma_range(16, 16)
    assert float(sigma[chosen].min()) >= lo and float(sigma[chosen].max()) <= hi
    assert float(sigma[chosen].std()) == pytest.approx((hi - lo) / math.sqrt(12), rel=0.1)  # uniform

    def lap_energy(t: torch.Tensor) -> torch.Tensor:
        k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
        return F.conv2d(t, k, groups=3).pow(2).flatten(1).mean(1)

    assert bool((lap_energy(out[changed]) < 0.7 * lap_energy(x[changed])).all())
    again = aug.augment(x, y, torch.Generator().manual_seed(7))
    assert torch.equal(again, out)
    other = aug.augment(x, y, torch.Generator().manual_seed(8))
    assert not torch.equal(other, out)


def test_blur_parameters_are_checked_naming_the_defense():
    for bad in ({"fraction": 1.5}, {"sigma": [5, 3]}, {"sigma": 2}, {"reference_size": 0}, {"colour": 1}):
        with pytest.raises(BenchError) as err:
            create_defense("blur", bad, where="models.dip_classifier.defense")
        assert err.value.where == "models.dip_classifier.defense"


# --------------------------------------------------------------------------- JPEG (the worked example)


def test_jpeg_keeps_shape_and_range_and_compresses():
    x = _images(4, size=32)
    errors = {}
    for q in (10, 95):
        out, _ = create_defense("jpeg", {"quality": q}, where="defenses.jpeg").forward(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(out * 255, (out * 255).round()) or torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
        errors[q] = float((out - x).abs().mean())
    assert errors[10] > errors[95] > 0
    with pytest.raises(BenchError) as err:
        create_defense("jpeg", {"quality": 0}, where="defenses.jpeg_low")
    assert err.value.where == "defenses.jpeg_low"


def test_jpeg_gradient_is_the_bpda_identity():
    jpeg = create_defense("jpeg", {"quality": 50}, where="defenses.jpeg")
    assert defense_kind(jpeg) == "preprocessor" and not jpeg.differentiable
    x = _images(2, size=16).requires_grad_(True)
    out, _ = jpeg.forward(x)
    assert torch.equal(out.detach(), jpeg.transform(x.detach()))
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    (out * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_jpeg_runs_inside_art_with_bpda_gradients():
    from art.attacks.evasion import FastGradientMethod

    from bench.models.estimators import to_art

    det = _tiny(size=16)
    jpeg = create_defense("jpeg", {"quality": 30, "device_type": "cpu"}, where="defenses.jpeg")
    x = _images(4, size=16)
    xj = jpeg.transform(x)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    defended, plain = to_art(det, preprocessing_defences=[jpeg]), to_art(det)
    assert np.allclose(defended.predict(x.numpy()), plain.predict(xj.numpy()), atol=1e-5)
    assert np.allclose(defended.loss_gradient(x.numpy(), y), plain.loss_gradient(xj.numpy(), y), atol=1e-6)
    fgsm = FastGradientMethod(defended, norm=np.inf, eps=8 / 255, eps_step=8 / 255, targeted=False, batch_size=4)
    adv = fgsm.generate(x.numpy(), y)
    assert adv.shape == x.shape and np.abs(adv - x.numpy()).max() <= 8 / 255 + 1e-6
    assert np.abs(adv - x.numpy()).max() > 1 / 255  # the BPDA gradient is not zero


# --------------------------------------------------------------------------- users' defenses: loading


USER_DEFENSES = """
import torch
from bench.defenses.base import TrainingDefense, WrapperDefense, as_detector
from bench.defenses.preprocessor import PreprocessorDefense


class Quantise(PreprocessorDefense):
    differentiable = False

    def __init__(self, levels: int = 4):
        super().__init__(device_type="cpu")
        self.levels = levels

    def transform(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class WrongShape(PreprocessorDefense):
    def transform(self, x):
        return x[..., :-1]


class OutOfRange(PreprocessorDefense):
    def transform(self, x):
        return x * 2 + 0.5


class MakesNaN(PreprocessorDefense):
    def transform(self, x):
        return x * float("nan")


class SecretlyNumpy(PreprocessorDefense):
    def transform(self, x):
        return torch.from_numpy(x.detach().numpy() ** 2)


class BadAugment(TrainingDefense):
    def augment(self, x, y, generator):
        return x - 1


class NaNLoss(TrainingDefense):
    def extra_loss(self, detector, x, y, logits):
        return logits.sum() * float("nan")


class NotADetector(WrapperDefense):
    def wrap(self, detector):
        return detector.net


class ThreeLogits(WrapperDefense):
    def wrap(self, detector):
        head = torch.nn.Sequential(detector, torch.nn.Linear(2, 3))
        return as_detector(head, like=detector)


class Averaged(WrapperDefense):
    def wrap(self, detector):
        return as_detector(torch.nn.Sequential(torch.nn.AvgPool2d(3, 1, 1), detector), like=detector)


class NotADefense:
    pass
"""


@pytest.fixture()
def user_file(tmp_path):
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "my_defenses.py").write_text(textwrap.dedent(USER_DEFENSES))
    return folder


def test_user_defense_loads_from_a_file_outside_the_package(user_file):
    quant = create_defense("my_defenses.py:Quantise", {"levels": 3}, where="defenses.quant", base_dir=user_file)
    assert quant.name == "defenses.quant" and quant.levels == 3 and defense_kind(quant) == "preprocessor"
    x = _images(2, size=8)
    out, _ = quant.forward(x)
    assert set(torch.unique(out).tolist()) <= {0.0, 0.5, 1.0}
    same = create_defense(str(user_file / "my_defenses.py") + ":Quantise", {}, where="d", name="q")
    assert type(same) is type(quant) and same.name == "q"
    check_defense(quant, _tiny(size=8), x)


def test_user_defense_loads_by_dotted_module(tmp_path):
    pkg = tmp_path / "userpkg_defs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "filters.py").write_text(textwrap.dedent(USER_DEFENSES))
    d = create_defense("userpkg_defs.filters:Averaged", {}, where="defenses.avg", base_dir=tmp_path)
    assert defense_kind(d) == "wrapper"
    det = _tiny(size=8)
    wrapped = d.wrap(det)
    x = _images(3, size=8)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), det(F.avg_pool2d(x, 3, 1, 1, count_include_pad=True)), atol=1e-6)
    check_defense(d, det, x)


@pytest.mark.parametrize(
    ("use", "params", "fragment"),
    [
        ("missing.py:Quantise", {}, "does not exist"),
        ("my_defenses.py:Nope", {}, "no class 'Nope'"),
        ("my_defenses.py:NotADefense", {}, "is not a defense"),
        ("my_defenses.py:Quantise", {"colours": 3}, "bad parameters"),
        ("no_such_module_xyz:Thing", {}, "no module named"),
        ("median", {}, "unknown defense 'median'"),
        ("my_defenses.py:", {}, "expected"),
    ],
)
def test_defense_that_fails_to_load_is_refused_naming_it(user_file, use, params, fragment):
    with pytest.raises(BenchError) as err:
        create_defense(use, params, where="defenses.mine", base_dir=user_file)
    assert err.value.where == "defenses.mine"
    assert fragment in err.value.message


def test_broken_user_files_are_reported_with_the_cause(tmp_path):
    (tmp_path / "syntax.py").write_text("class A(:\n    pass\n")
    (tmp_path / "raises.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(BenchError, match="line 1") as err:
        create_defense("syntax.py:A", {}, where="defenses.s", base_dir=tmp_path)
    assert err.value.where == "defenses.s"
    with pytest.raises(BenchError, match="no_such_dependency_xyz") as err:
        create_defense("raises.py:A", {}, where="defenses.r", base_dir=tmp_path)
    assert err.value.where == "defenses.r"


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [
        ("WrongShape", "shape"),
        ("OutOfRange", "[0, 1]"),
        ("MakesNaN", "NaN"),
        ("SecretlyNumpy", "differentiable = False"),
        ("BadAugment", "[0, 1]"),
        ("NaNLoss", "NaN"),
        ("NotADetector", "Detector"),
        ("ThreeLogits", "shape"),
    ],
)
def test_defense_that_breaks_its_contract_is_refused_naming_it(user_file, cls, fragment):
    d = create_defense(f"my_defenses.py:{cls}", {}, where=f"defenses.{cls}", base_dir=user_file)
    with pytest.raises(ContractError) as err:
        check_defense(d, _tiny(size=8), _images(2, size=8))
    assert err.value.where == f"defenses.{cls}"
    assert fragment in err.value.message


def test_applying_a_wrapper_holds_it_to_the_contract_without_the_preflight(user_file):
    from bench.defenses.apply import apply_defense

    with pytest.raises(ContractError) as err:  # the contract's rule, not a silent wrap of what it returned
        apply_defense(_tiny(size=8), "nad", "my_defenses.py:NotADetector", {}, user_file, check_contract=False)
    assert err.value.where == "defenses.nad" and "Detector" in err.value.message
    det = apply_defense(_tiny(size=8), "avg", "my_defenses.py:Averaged", {}, user_file, check_contract=False)
    assert isinstance(det, Detector)


def test_preprocessor_contract_is_also_enforced_inside_art(user_file):
    from bench.models.estimators import to_art

    bad = create_defense("my_defenses.py:OutOfRange", {}, where="defenses.bad", base_dir=user_file)
    clf = to_art(_tiny(size=8), preprocessing_defences=[bad])
    with pytest.raises(ContractError) as err:
        clf.predict(_images(2, size=8).numpy())
    assert err.value.where == "defenses.bad"


# --------------------------------------------------------------------------- registry


def test_registry_builtins_kinds_and_expectations():
    assert {"lipschitz", "blur", "jpeg"} <= set(list_defenses())
    assert defense_kind(create_defense("lipschitz", {"lambda": 5}, where="a")) == "training"
    assert defense_kind(create_defense("blur", {}, where="b")) == "training"
    check_defense(create_defense("blur", {"sigma": [1, 2]}, where="b"), _tiny(size=8), _images(4, size=8))
    check_defense(create_defense("lipschitz", {"lambda": 5}, where="a"), _tiny(size=8), _images(2, size=8))
    with pytest.raises(BenchError, match="training defense") as err:
        create_defense("lipschitz", {}, where="defenses.lip", expect=("preprocessor", "wrapper"))
    assert err.value.where == "defenses.lip"
    register_defense("blur-strong", BlurAugmentation)
    assert create_defense("blur-strong", {"fraction": 1.0}, where="c").fraction == 1.0
    with pytest.raises(ContractError):
        defense_kind(object())


def test_dip_is_registered_lazily():
    """`dip` resolves to the DIP preprocessor without importing it at package import time."""
    from bench.dip.preprocessor import DIPPreprocessor

    cls = resolve_defense_class("dip", where="defenses.dip")
    assert cls is DIPPreprocessor and defense_kind(cls) == "preprocessor"
    assert "dip" in list_defenses()
