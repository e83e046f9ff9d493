"""Registry, model cards, checkpoints and the toolkit estimators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bench.attacks import toolkits
from bench.attacks.params import FGSMParams
from bench.errors import BenchError
from bench.models import create_model, list_models
from bench.models.checkpoint import load_saved_detector, load_user_checkpoint, save_detector
from bench.models.estimators import to_art, to_foolbox
from bench.models.recipe import Recipe

CARDS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.yaml"))


@pytest.mark.parametrize("card", CARDS, ids=[c.stem for c in CARDS])
def test_model_cards_match_the_registry(card: Path):
    data = yaml.safe_load(card.read_text())
    assert data["arch"] in list_models()
    Recipe.model_validate(data["recipe"])
    det = create_model(data["arch"], data["input"]["size"], data["input"]["mean"], data["input"]["std"])
    out = det(torch.rand(2, 3, data["input"]["size"], data["input"]["size"]))
    assert out.shape == (2, 2)


def test_unknown_architecture():
    with pytest.raises(BenchError, match="unknown model 'alexnet'"):
        create_model("alexnet")


def test_normalisation_travels_with_the_weights(tmp_path: Path):
    det = create_model("tiny", 16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).eval()
    save_detector(det, tmp_path / "d.safetensors")
    back = load_saved_detector(tmp_path / "d.safetensors")
    assert back.spec.mean == (0.5, 0.4, 0.3) and back.spec.std == (0.2, 0.25, 0.3)
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(det(x), back(x))


@pytest.mark.parametrize("fmt", ["pt", "prefixed", "safetensors", "torchscript"])
def test_user_checkpoint_formats(tmp_path: Path, fmt: str):
    det = create_model("tiny", 16).eval()
    path = tmp_path / f"m.{ {'pt': 'pt', 'prefixed': 'pth', 'safetensors': 'safetensors', 'torchscript': 'ts'}[fmt]}"
    if fmt == "pt":
        torch.save(det.net.state_dict(), path)
    elif fmt == "prefixed":
        torch.save({"state_dict": det.state_dict()}, path)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in det.net.state_dict().items()}, str(path))
    else:
        torch.jit.script(det.net).save(str(path))
    back = load_user_checkpoint(path, det.spec)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(det(x), back(x), atol=1e-6)


def test_estimators_agree_with_the_detector():
    det = create_model("tiny", 16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).eval()
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        ref = det(x).numpy()
    art_out = to_art(det).predict(x.numpy().astype(np.float64))  # float64 in: cast to float32 inside
    fb_out = to_foolbox(det)(x).numpy()
    assert np.allclose(art_out, ref, atol=1e-5) and np.allclose(fb_out, ref, atol=1e-5)


def test_fgsm_art_equals_foolbox():
    torch.manual_seed(0)
    det = create_model("tiny", 24, mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3)).eval()
    x = torch.rand(16, 3, 24, 24)
    y = torch.randint(0, 2, (16,))
    for eps in (0.01, 0.02, 0.1):
        a = toolkits.art_fgsm(det, x, y, FGSMParams(eps=eps))
        b = toolkits.foolbox_fgsm(det, x, y, FGSMParams(eps=eps))
        assert float((a - b).abs().max()) <= 1e-6
        assert float((a - x).abs().max()) == pytest.approx(eps, abs=1e-6)
        assert a.min() >= 0 and a.max() <= 1
