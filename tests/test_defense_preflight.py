"""`bench run` exercises every defense's full contract at preflight, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

DEFENSE = '''
import numpy as np
import torch

from bench.defenses.preprocessor import PreprocessorDefense


class RoundTrip(PreprocessorDefense):
    """Claims to be differentiable, but goes through numpy: no gradient reaches the input."""

    differentiable = True

    def transform(self, x):
        return torch.from_numpy(np.round(x.detach().cpu().numpy() * 255) / 255).to(x.device)
'''

SUITE = """
name: liar
data: {source: synthetic-faces, n: 64, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 1}}
defenses:
  rounding: {use: my_defense.py:RoundTrip, applies_to: [a]}
attacks:
  fgsm: {attack: fgsm, backend: native, eps: 0.03}
"""


def test_a_defense_that_claims_differentiable_and_is_not_is_refused_before_anything_is_written(tmp_path: Path,
                                                                                                capsys):
    (tmp_path / "my_defense.py").write_text(DEFENSE)
    (tmp_path / "s.yaml").write_text(SUITE)
    home, lb = tmp_path / "home", tmp_path / "lb"
    assert main(["run", str(tmp_path / "s.yaml"), "--home", str(home), "--out", str(lb), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "defenses.rounding" in err and "differentiable" in err and "autograd" in err
    assert not home.exists() and not lb.exists()
