"""Deep Image Prior purification: the network, the batched engine against one image at a time,
purification quality, the readout choice, trajectories and their figure, and the ART preprocessor."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("ART_DATA_PATH", os.path.join(tempfile.gettempdir(), "bench-tests-art"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from dip_reference import fit_reference  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from bench.data.dataset import ImageSet  # noqa: E402
from bench.data.synthetic import generate_synthetic_faces  # noqa: E402
from bench.dip.config import DIPConfig  # noqa: E402
from bench.dip.engine import image_seed, psnr, purify  # noqa: E402
from bench.dip.network import BatchedSkipNet, SkipNet, init_skipnet  # noqa: E402
from bench.dip.readout import choose_readout, pick_readout  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.models import create_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def faces() -> ImageSet:
    images, labels, ids = generate_synthetic_faces(8, size=32, seed=0)
    return ImageSet.from_uint8(images, labels, ids)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return create_model("tiny", input_size=32).eval()


def _conv_params(cin: int, cout: int, k: int) -> int:
    return cout * cin * k * k + cout


def test_defaults_are_the_papers_settings() -> None:
    c = DIPConfig()
    assert c.channels_down == (8, 16, 32, 64, 128) and c.channels_up == (8, 16, 32, 64, 128)
    assert c.channels_skip == (0, 0, 0, 4, 4)
    assert (c.upsample, c.pad, c.input_channels, c.input_scale) == ("bilinear", "reflection", 32, 0.1)
    assert (c.lr, c.ema, c.iterations, c.readout) == (0.01, 0.99, 10_000, 6_000)
    assert c.input_jitter == pytest.approx(1 / 30)
    assert c.candidates()[0] == 2_500 and c.candidates()[-1] == 7_500
    # 5 levels need each down path to leave >= 2 x 2 pixels.
    assert c.levels_for(64, 64) == 5 and c.levels_for(33, 33) == 5 and c.levels_for(32, 32) == 4
    assert c.levels_for(8, 8) == 2 and c.levels_for(2, 2) == 0


def test_config_errors_name_the_field() -> None:
    with pytest.raises(BenchError) as e:
        DIPConfig.from_dict({"iterations": 100, "readout": 200}, "defenses.dip")
    assert e.value.where == "defenses.dip" and "readout" in e.value.message
    with pytest.raises(BenchError) as e:
        DIPConfig.from_dict({"lr": -1}, "defenses.dip")
    assert e.value.where == "defenses.dip.lr"
    with pytest.raises(BenchError) as e:
        DIPConfig.from_dict({"learning_rate": 0.1})
    assert e.value.where == "dip.learning_rate"
    with pytest.raises(BenchError):
        DIPConfig.from_dict({"channels_skip": (0, 0, 4)})
    assert DIPConfig.from_dict({"readout": "auto"}).readout == "auto"


def test_skip_network_follows_the_description() -> None:
    cfg = DIPConfig()
    net = SkipNet(cfg)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.padding_mode == "reflect" for c in convs if c.kernel_size == (3, 3))
    assert [lv.down_conv1.stride for lv in net.levels] == [(2, 2)] * 5
    assert net.levels[3].skip_conv.out_channels == 4 and net.levels[0].skip_conv is None
    # Level 4's up path sees its 4 skip channels and its own 128 down channels; level 3 sees 4 + 128.
    assert net.levels[4].up_conv1.in_channels == 132 and net.levels[3].up_conv1.in_channels == 132
    assert net.levels[2].up_conv1.in_channels == 64 and net.out_conv.out_channels == 3
    expected, cin = 0, 32
    for i, (d, u, s) in enumerate(zip(cfg.channels_down, cfg.channels_up, cfg.channels_skip, strict=True)):
        k = cfg.channels_up[i + 1] if i < 4 else d
        expected += _conv_params(cin, s, 1) + 2 * s if s else 0
        expected += _conv_params(cin, d, 3) + _conv_params(d, d, 3) + 4 * d
        expected += 2 * (s + k) + _conv_params(s + k, u, 3) + _conv_params(u, u, 1) + 4 * u
        cin = d
    expected += _conv_params(8, 3, 1)
    assert sum(p.numel() for p in net.parameters()) == expected
    init_skipnet(net, torch.Generator().manual_seed(0))
    out = net(torch.rand(1, 32, 64, 64) * 0.1)
    assert out.shape == (1, 3, 64, 64) and float(out.detach().min()) > 0 and float(out.detach().max()) < 1


@pytest.mark.parametrize("bmm_max_pixels", [0, 64, 10**6])
def test_batched_forward_equals_each_network(bmm_max_pixels: int) -> None:
    """Grouped convolutions, bmm or a mix: each image's output is its own network's, BN per image."""
    cfg = DIPConfig(bmm_max_pixels=bmm_max_pixels)
    shape, n = (40, 36), 3
    levels = cfg.levels_for(*shape)
    nets = [init_skipnet(SkipNet(cfg, levels), torch.Generator().manual_seed(i)) for i in range(n)]
    params = {
        k: torch.stack([dict(m.named_parameters())[k].detach() for m in nets]) for k, _ in nets[0].named_parameters()
    }
    z = torch.rand(n, 32, *shape) * 0.1
    batched = BatchedSkipNet(cfg, levels, shape, torch.device("cpu"))(params, z)
    for i, m in enumerate(nets):
        assert torch.allclose(batched[i], m.train()(z[i : i + 1])[0], atol=1e-4, rtol=0)


def test_batched_equals_one_at_a_time_and_the_plain_network() -> None:
    """In float64 (no rounding to amplify): batched, one at a time, another batch composition and order,
    and the plain nn.Module with torch.optim.Adam all give the same images after 12 iterations."""
    torch.manual_seed(1)
    x = torch.rand(3, 3, 40, 36)
    cfg = DIPConfig(iterations=12, readout=12, batch_size=3)
    batched = purify(x, cfg, seed=5, dtype=torch.float64).purified
    single = purify(x, cfg.model_copy(update={"batch_size": 1}), seed=5, dtype=torch.float64).purified
    other = purify(x[[2, 0]], cfg, seed=5, dtype=torch.float64).purified
    plain = torch.stack([fit_reference(x[i], cfg, 12, seed=5, dtype=torch.float64) for i in range(3)])
    assert (batched - single).abs().max() <= 1e-9
    assert (batched[[2, 0]] - other).abs().max() <= 1e-9
    assert (batched - plain).abs().max() <= 1e-9
    assert (batched - x.double()).abs().max() > 0.05  # it did something


def test_parallel_fits_on_the_cpu_match_and_restore_threads(detector: nn.Module) -> None:
    """Batches fitted in parallel threads (one intra-op thread each) give the same images and trajectories."""
    torch.manual_seed(2)
    x = torch.rand(5, 3, 32, 32)
    cfg = DIPConfig(iterations=6, readout=6, batch_size=2, workers=1)
    one = purify(x, cfg, seed=0, dtype=torch.float64, record_every=3, classifier=detector)
    two = purify(
        x, cfg.model_copy(update={"workers": 2}), seed=0, dtype=torch.float64, record_every=3, classifier=detector
    )
    assert two.workers == 2 and one.workers == 1
    assert (one.purified - two.purified).abs().max() <= 1e-9
    assert np.allclose(one.p_real, two.p_real, atol=1e-6)
    assert torch.get_num_threads() == 1 and not detector.training


def test_float32_batched_close_to_one_at_a_time(faces: ImageSet) -> None:
    """In float32 the kernels differ in their last bits; after one step the results agree to 1e-4. Adam turns
    such differences in near-zero gradients into whole steps, so later they drift apart a little (stated bound)."""
    x = faces.images[:4]
    one = DIPConfig(iterations=1, readout=1, batch_size=4)
    a = purify(x, one, seed=0).purified
    b = purify(x, one.model_copy(update={"batch_size": 1}), seed=0).purified
    assert (a - b).abs().max() <= 1e-4
    cfg = DIPConfig(iterations=40, readout=40, batch_size=4)
    a = purify(x, cfg, seed=0).purified
    b = purify(x, cfg.model_copy(update={"batch_size": 1}), seed=0).purified
    assert psnr(a, b).min() >= 30.0
    assert abs(psnr(a, x).mean() - psnr(b, x).mean()) <= 0.5


def test_seeded_and_deterministic(faces: ImageSet) -> None:
    x = faces.images[:2]
    cfg = DIPConfig(iterations=5, readout=5)
    a = purify(x, cfg, seed=0).purified
    assert torch.equal(a, purify(x, cfg, seed=0).purified)
    assert (a - purify(x, cfg, seed=1).purified).abs().max() > 1e-3
    assert image_seed(0, "a") == image_seed(0, "a") != image_seed(1, "a")


def _fgsm(detector: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(detector(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def test_purification_keeps_clean_images_and_removes_fgsm(faces: ImageSet, detector: nn.Module) -> None:
    """At the readout (300 iterations at 32 x 32, the reduced setting) a clean image comes back close to itself
    (PSNR >= 24 dB) while little of an FGSM perturbation (eps 0.02, the paper's) survives: the purified
    adversarial image minus the clean one keeps at most 30 % of the perturbation on average (projection)."""
    clean = faces.images[:4]
    adv = _fgsm(detector, clean, faces.labels[:4], 0.02)
    res = purify(torch.cat([clean, adv]), DIPConfig(iterations=300, readout=300, batch_size=8), seed=0)
    assert psnr(res.purified[:4], clean).min() >= 24.0
    delta = (adv - clean).flatten(1)
    retained = ((res.purified[4:] - clean).flatten(1) * delta).sum(1) / (delta * delta).sum(1)
    assert float(retained.mean()) <= 0.3 and float(retained.max()) <= 0.5


def test_choose_readout(faces: ImageSet, detector: nn.Module) -> None:
    assert pick_readout({100: 0.5, 200: 0.75, 300: 0.75}) == 200
    with pytest.raises(BenchError):
        pick_readout({})
    x, y = faces.images[:4], faces.labels[:4]
    cfg = DIPConfig(iterations=30, readout="auto", readout_range=(10, 40, 10))
    choice = choose_readout(x, y, detector, cfg, seed=0)
    assert sorted(choice.accuracy) == [10, 20, 30]  # 40 is past the last iteration
    snaps = purify(x, cfg, seed=0, candidates=[10, 20, 30]).snapshots
    for t, acc in choice.accuracy.items():
        pred = detector(snaps[t]).argmax(1)
        assert acc == pytest.approx(float((pred == y).float().mean()))
    assert choice.iteration == pick_readout(choice.accuracy)
    with pytest.raises(BenchError):
        purify(x, cfg.model_copy(update={"readout": 5}), record_every=5)  # no classifier


def test_trajectories_and_figure(faces: ImageSet, detector: nn.Module, tmp_path) -> None:
    from PIL import Image

    from bench.dip.figure import moving_average, plot_trajectories

    x = faces.images[:3]
    cfg = DIPConfig(iterations=20, readout=10)
    res = purify(x, cfg, seed=0, record_every=5, classifier=detector, candidates=[15])
    assert res.iterations.tolist() == [5, 10, 15, 20] and res.p_real.shape == (3, 4)
    assert res.steps_run == 20  # trajectories run every iteration
    p15 = torch.softmax(detector(res.snapshots[15]), 1)[:, 1].detach().numpy()
    assert np.allclose(res.p_real[:, 2], p15, atol=1e-5)
    assert np.allclose(moving_average(np.arange(5.0), 3), [0.5, 1, 2, 3, 3.5])
    path = plot_trajectories(
        {"FGSM fake-wrong": res.p_real[0], "clean fake": res.p_real[1], "clean real": res.p_real[2]},
        res.iterations,
        readout=10,
        threshold=0.5,
        path=tmp_path / "dip.png",
    )
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 200
    with pytest.raises(ValueError):
        plot_trajectories({str(i): res.p_real[0] for i in range(5)}, res.iterations, 10, 0.5, tmp_path / "x.png")


def test_preprocessor_through_art(faces: ImageSet, detector: nn.Module) -> None:
    """Predictions are the detector's on the purified images; attack gradients are BPDA (the detector's
    gradient at the purified point); repeated images are not purified twice."""
    from bench.dip.preprocessor import DIPPreprocessor
    from bench.models.estimators import to_art

    pre = DIPPreprocessor.from_params({"iterations": 8, "readout": 8, "batch_size": 4, "seed": 3})
    assert pre.seed == 3 and pre.config.readout == 8
    clf = to_art(detector, preprocessing_defences=[pre])
    x = faces.images[:3]
    y = faces.labels[:3]
    logits = clf.predict(x.numpy())
    purified = purify(x, pre.config, seed=3).purified
    with torch.no_grad():
        assert np.allclose(logits, detector(purified).numpy(), atol=1e-5)
    assert pre.images_purified == 3
    onehot = np.eye(2, dtype=np.float32)[y.numpy()]
    grad = clf.loss_gradient(x.numpy(), onehot)
    assert pre.images_purified == 3  # served from the cache
    plain = to_art(detector).loss_gradient(purified.numpy(), onehot)
    assert np.allclose(grad, plain, atol=1e-6) and np.abs(grad).max() > 0
    with pytest.raises(BenchError) as e:
        DIPPreprocessor.from_params({"iterations": 10, "readout": 20})
    assert "readout" in e.value.message
    auto = DIPPreprocessor.from_params({"iterations": 8, "readout": "auto", "readout_range": (4, 8, 4)})
    with pytest.raises(BenchError):
        auto.transform(x)
    choice = auto.calibrate(x, y, detector)
    assert auto.config.readout == choice.iteration in (4, 8)
    assert auto.transform(x).shape == x.shape and "readout_choice" in auto.describe()


def test_bad_inputs() -> None:
    cfg = DIPConfig(iterations=2, readout=2)
    with pytest.raises(BenchError):
        purify(torch.rand(1, 3, 2, 2), cfg)
    with pytest.raises(BenchError):
        purify(torch.rand(3, 8, 8), cfg)
    with pytest.raises(BenchError):
        purify(torch.rand(2, 3, 8, 8), cfg, keys=["only-one"])
    res = purify(torch.rand(0, 3, 8, 8), cfg)
    assert res.purified.shape == (0, 3, 8, 8)
