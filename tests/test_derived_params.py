"""Every parameter model is checked at validate time, the derived ones too (issue 24): a suite `bench validate`
calls valid runs; what only a run could find (a detector no gradient reaches) is refused before any write."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import bench, write_suite
from torch import nn

BASE = {
    "name": "d",
    "data": {"source": "synthetic-faces", "n": 40, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 1}}},
    "attacks": {"f": {"attack": "fgsm", "backend": "native", "eps": 0.02}},
    "evaluation": {"max_attack_images": 8, "attack_batch_size": 8, "gradient_norm_images": 8},
}


def write(tmp_path: Path, doc: dict) -> Path:
    return write_suite(tmp_path, doc, "d.yaml")


@pytest.mark.parametrize("change, expected", [
    ({"attacks": {"x": {"attack": "fgsm", "backend": "art", "eps": [0.0, 0.01]}}},
     "attacks.x.eps: a budget of 0 is no attack"),
    ({"attacks": {"x": {"attack": "pgd", "backend": "native", "eps": 0.0, "norm": "l2", "steps": 5,
                        "step_size": 0.1, "random_start": False}}}, "attacks.x.eps: a budget of 0 is no attack"),
    ({"attacks": {"x": {"attack": "pgd", "backend": "native", "eps": 5.0, "norm": "linf", "steps": 5,
                        "step_size": 0.1, "random_start": False}}},
     "attacks.x.eps: 5 cannot be an L-inf budget: its noise control refuses it"),
    ({"evaluation": {"checks": {"convergence": {"attack": "pgd", "steps_factor": 4, "params": {
        "eps": 0.02, "steps": 40_000, "step_size": 0.005, "random_start": False}}}}},
     "evaluation.checks.convergence.params.steps: 160000 is over the cap"),
    ({"evaluation": {"checks": {"unbounded": {"attack": "pgd", "params": {"eps": 1.0, "steps": 10,
                                                                         "step_size": -1.0}}}}},
     "evaluation.checks.unbounded.params.step_size"),
])
def test_validate_checks_the_attacks_a_run_derives(tmp_path, change, expected):
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    for k, v in change.items():
        doc[k] = {**doc.get(k, {}), **v} if k == "evaluation" else v
    code, err = bench("validate", str(write(tmp_path, doc)))
    assert code == 2 and expected in err and err.count("\n") == 1, err


class Constant(nn.Module):
    """Two logits that do not depend on the image: no gradient reaches the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 2) + torch.tensor([0.2, -0.2])


def test_a_detector_no_gradient_reaches_is_refused_before_any_write(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(Constant()).save(str(tmp_path / "constant.ts"))
    doc = {**BASE, "models": {"a": {"arch": "tiny", "checkpoint": "constant.ts"}}}
    code, err = bench("run", str(write(tmp_path, doc)), "--home", str(tmp_path / "home"), "--out",
                      str(tmp_path / "lb"), "--quiet")
    assert code == 2 and "constant.ts: the network's output does not depend on its input" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "home").exists()
