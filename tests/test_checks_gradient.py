"""The run-level checks on a real run: a defense whose declared gradient is zero (rounding declared
differentiable through torch.round) fires gradient-masked; a weakened unbounded attack (1 step, tiny step
size) fires unbounded-attack-fails."""

from __future__ import annotations

import pytest
import yaml

from bench.cli import main
from bench.report.sanity import run_checks
from bench.results.query import load_results
from bench.results.store import ResultStore

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

ROUNDING = '''
import torch

from bench.defenses.preprocessor import PreprocessorDefense


class Rounding(PreprocessorDefense):
    """Rounds to 4 levels and declares itself differentiable: its gradient (torch.round's) is zero."""

    differentiable = True

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3
'''


def _suite(unbounded: dict) -> dict:
    return {
        "name": "masked", "seed": 1,
        "data": {"source": "synthetic-faces", "n": 120, "size": 32},
        "models": {"m": {"arch": "tiny", "recipe": {"epochs": 6, "lr": 0.05, "batch_size": 16}}},
        "defenses": {"rounding": {"use": "rounding.py:Rounding", "applies_to": ["m"], "adaptive": True}},
        "attacks": {"fgsm": {"attack": "fgsm", "backend": "native", "eps": 0.03}},
        "evaluation": {"max_attack_images": 12, "attack_batch_size": 12, "gradient_norm_images": 8,
                       "checks": {"n": 8, "unbounded": unbounded, "convergence": None}},
    }


def _flags(tmp_path, unbounded: dict):
    (tmp_path / "rounding.py").write_text(ROUNDING)
    path = tmp_path / "masked.yaml"
    path.write_text(yaml.safe_dump(_suite(unbounded)))
    assert main(["run", str(path), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet"]) == 0
    res = load_results(ResultStore(tmp_path / "home" / "results.sqlite"), "masked", None)
    gradnorms = {v["name"]: v["gradnorm"] for v in res.variants.to_dict("records")}
    return run_checks(res.attacks.to_dict("records"), None, gradnorms), (tmp_path / "lb" / "masked.md").read_text()


@pytest.fixture(scope="module")
def strong(tmp_path_factory, one_thread):
    return _flags(tmp_path_factory.mktemp("strong"), {"attack": "pgd", "backend": "native", "params": {
        "eps": 1.0, "norm": "linf", "steps": 20, "step_size": 0.1, "random_start": False}})


def test_zero_gradients_through_a_defense_fire_gradient_masked(strong):
    flags, text = strong
    masked = [f for f in flags if f.check == "gradient-masked"]
    assert [f.model for f in masked] == ["m+rounding"]  # the bare model's gradients are fine
    assert "zero on 8" in masked[0].message
    assert "[gradient-masked](../docs/checks/gradient-masked.md)" in text
    # the full-strength unbounded attack fools the bare model, not the model behind the masked gradient
    assert [f.model for f in flags if f.check == "unbounded-attack-fails"] == ["m+rounding"]


def test_a_weakened_unbounded_attack_fires(tmp_path, one_thread):
    flags, _ = _flags(tmp_path, {"attack": "pgd", "backend": "native", "params": {
        "eps": 1.0, "norm": "linf", "steps": 1, "step_size": 1e-4, "random_start": False}})
    assert "m" in [f.model for f in flags if f.check == "unbounded-attack-fails"]
