"""The field's detector architectures: build at a small size, forward and input-gradient pass, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from bench.errors import BenchError
from bench.models import create_model, list_models
from bench.models.checkpoint import load_saved_detector, load_user_checkpoint, save_detector
from bench.models.frequency import LogDCT, dct_basis
from bench.models.registry import default_recipe
from bench.suite.schema import ModelConfig

NEW = ["dct", "meso4", "meso_inception4", "xception", "efficientnet_b4"]
ROOT = Path(__file__).resolve().parents[1]


def test_new_architectures_are_registered(capsys):
    from bench.cli import main

    assert set(NEW) <= set(list_models())
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()[0]
    assert all(arch in listed for arch in NEW)


@pytest.mark.parametrize("arch", NEW)
def test_forward_and_input_gradient(arch: str, one_thread):
    det = create_model(arch, 32).eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = det(x)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    (logits[:, 1] - logits[:, 0]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", NEW)
def test_saved_checkpoint_loads(arch: str, tmp_path: Path, one_thread):
    det = create_model(arch, 32)
    det.train()
    det(torch.rand(4, 3, 32, 32))  # batch norm and the DCT statistics move off their initial values
    det.eval()
    save_detector(det, tmp_path / "d.safetensors")
    back = load_saved_detector(tmp_path / "d.safetensors")
    x = torch.rand(2, 3, 32, 32)
    assert back.spec.arch == arch and torch.allclose(det(x), back(x), atol=1e-5)
    torch.save(det.net.state_dict(), tmp_path / "d.pt")  # a user's state_dict through the safe loader
    user = load_user_checkpoint(tmp_path / "d.pt", det.spec)
    assert torch.allclose(det(x), user(x), atol=1e-5)


def test_dct_basis_is_orthonormal_and_matches_scipy():
    from scipy.fft import dct

    d = dct_basis(16).double()
    assert torch.allclose(d @ d.T, torch.eye(16, dtype=torch.float64), atol=1e-5)
    v = torch.rand(16, dtype=torch.float64)
    assert torch.allclose(d @ v, torch.from_numpy(dct(v.numpy(), norm="ortho")), atol=1e-5)


def test_dct_statistics_are_buffers_fixed_in_eval():
    layer = LogDCT(8)
    assert {"basis", "freq_mean", "freq_sq_mean"} <= set(dict(layer.named_buffers()))
    layer.train()
    layer(torch.rand(4, 3, 8, 8))
    mean = layer.freq_mean.clone()
    assert mean.abs().sum() > 0
    layer.eval()
    layer(torch.rand(4, 3, 8, 8))
    assert torch.equal(layer.freq_mean, mean)
    with pytest.raises(BenchError, match="built for 8 px"):
        layer(torch.rand(1, 3, 16, 16))


def test_dct_recipe_defaults_match_its_card_and_yield_to_the_suite():
    card = yaml.safe_load((ROOT / "models" / "dct.yaml").read_text())
    assert card["recipe"] == default_recipe("dct")
    assert ModelConfig(arch="dct").recipe.lr == card["recipe"]["lr"]
    mixed = ModelConfig(arch="dct", recipe={"epochs": 2})
    assert mixed.recipe.epochs == 2 and mixed.recipe.weight_decay == card["recipe"]["weight_decay"]
    assert ModelConfig(arch="resnet18").recipe.lr == 0.001  # the paper's recipe elsewhere


@pytest.mark.parametrize("arch", ["xception", "efficientnet_b4"])
def test_timm_pretrained_without_cache_says_where_to_put_weights(arch: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(BenchError, match="not in the local cache") as err:
        create_model(arch, 32, pretrained=True)
    assert str(tmp_path / "torch") in str(err.value) or "Hugging Face cache" in str(err.value)


def test_timm_pretrained_loads_from_the_torch_hub_cache(tmp_path: Path, monkeypatch, one_thread):
    """Weights placed in the torch hub cache are used (no network): here, a saved random ImageNet-head model."""
    import timm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    src = timm.create_model("legacy_xception", pretrained=False)
    target = tmp_path / "torch" / "hub" / "checkpoints" / "xception-43020ad28.pth"
    target.parent.mkdir(parents=True)
    torch.save(src.state_dict(), target)
    det = create_model("xception", 32, pretrained=True)
    assert torch.equal(det.net.conv1.weight, src.conv1.weight)
    assert det.net.get_classifier().out_features == 2


@pytest.mark.parametrize("arch", ["dct", "meso4", "meso_inception4"])
def test_in_package_architectures_have_no_pretrained_weights(arch: str):
    with pytest.raises(BenchError, match="pretrained"):
        create_model(arch, 32, pretrained=True)
