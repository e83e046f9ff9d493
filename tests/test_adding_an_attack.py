"""docs/adding-an-attack.md, run: its attack, written to a file outside the package, is named in a suite
by `backend: file.py:Name`, runs, reaches the leaderboard, and the sanity checks read its declared family."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from bench.attacks.registry import get_attack, run_attack
from bench.attacks.user import register_user_backend
from bench.cli import main
from bench.errors import BenchError
from bench.models.registry import create_model
from bench.suite.load import load_suite

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-an-attack.md"

# An attack that declares itself iterative but returns its input: the sanity checks must treat it as the
# iterative attack it claims to be (and find it weaker than one FGSM step, and giving up).
NO_OP = '''
from pydantic import Field

from bench.attacks.params import AttackParams


class NoOpParams(AttackParams):
    eps: float = Field(0.03, ge=0.0, le=1.0)


class NoOp:
    name = "no_op_iterative"
    title = "No-op"
    family = "iterative"
    norm = "linf"
    budget = "eps"
    deterministic = True
    Params = NoOpParams

    def __init__(self, params):
        self.params = params

    def __call__(self, detector, x, y):
        return x.clone()
'''

SUITE = """
name: guide
seed: 0
data: {source: synthetic-faces, n: 240, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 10, lr: 0.05, batch_size: 16}}
  b: {arch: tiny, recipe: {epochs: 10, lr: 0.03, batch_size: 16}}
attacks:
  fgsm: {attack: fgsm, backend: native, eps: 0.03}
  mi:
    attack: mi_fgsm
    backend: attacks/mi_fgsm.py:MomentumFGSM
    eps: [0.01, 0.03]
    steps: 5
    decay: 1.0
    table: {eps: 0.03}
  noop: {attack: no_op_iterative, backend: attacks/noop.py:NoOp, eps: 0.03}
threat_models: {white_box: true, transfer: [[a, b]]}
evaluation: {max_attack_images: 24, attack_batch_size: 24, gradient_norm_images: 8}
report: {figures: false}
"""


def guide_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) == 1, "the guide has one Python block: the attack"
    return blocks[0]


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("guide")
    (d / "attacks").mkdir()
    (d / "attacks" / "mi_fgsm.py").write_text(guide_code())
    (d / "attacks" / "noop.py").write_text(NO_OP)
    (d / "guide.yaml").write_text(SUITE)
    return d


def test_the_guides_attack_is_declared_and_stays_in_its_budget(suite_dir):
    spec = register_user_backend("mi_fgsm", "attacks/mi_fgsm.py:MomentumFGSM", suite_dir, where="attacks.mi")
    assert (spec.family, spec.norm, spec.budget, spec.deterministic) == ("iterative", "linf", "eps", True)
    det = create_model("tiny", input_size=16).eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(4, dtype=torch.int64)
    params = spec.params(eps=0.05, steps=4, decay=1.0)
    adv = run_attack("mi_fgsm", "attacks/mi_fgsm.py:MomentumFGSM", det, x, y, params)
    assert adv.shape == x.shape and float((adv - x).abs().max()) <= 0.05 + 1e-6
    assert float((adv - x).abs().max()) > 0.04  # it moved, by up to the budget
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_a_user_attack_in_a_suite_reaches_the_leaderboard_and_the_checks(suite_dir, tmp_path):
    home, lb = tmp_path / "home", tmp_path / "lb"
    assert main(["run", str(suite_dir / "guide.yaml"), "--home", str(home), "--out", str(lb), "--quiet"]) == 0
    board = (lb / "guide.md").read_text()
    table_ii = board.split("## Table II")[1].split("\n## ")[0]
    assert "MI-FGSM black-box" in table_ii and "MI-FGSM white-box" in table_ii
    # the budget as run: the largest 8-bit step within eps (bench.attacks.delivery)
    assert ("mi: attacks/mi_fgsm.py:MomentumFGSM, eps=0.03 (run at 0.027451, on the 8-bit grid), steps=5, "
            "decay=1.0") in table_ii
    sanity = board.split("## Every sanity flag")[1].split("\n## ")[0]  # one row per flag (the appendix)
    fired = [li for li in sanity.splitlines() if li.startswith("| ") and "noop" in li]
    # declared iterative, weaker than one FGSM step of the same budget: flagged by its family
    assert any("single-step-beats-iterative" in li for li in fired), sanity
    assert any("attack-left-images-unchanged" in li for li in fired), sanity
    assert not any("mi[" in li and "single-step-beats-iterative" in li for li in sanity.splitlines())
    con = sqlite3.connect(home / "results.sqlite")
    n = con.execute("SELECT COUNT(*) FROM cells WHERE kind='attack' AND attack='mi_fgsm'").fetchone()[0]
    con.close()
    assert n == 2 * 3  # two eps x (two white-box + one transfer)


def test_editing_the_attack_file_gives_its_cells_new_keys(suite_dir, tmp_path):
    before = {a.source_digest for a in load_suite(suite_dir / "guide.yaml").attacks if a.attack == "mi_fgsm"}
    copy = tmp_path / "s"
    shutil.copytree(suite_dir, copy)
    path = copy / "attacks" / "mi_fgsm.py"
    path.write_text(path.read_text() + "\n# edited\n")
    after = {a.source_digest for a in load_suite(copy / "guide.yaml").attacks if a.attack == "mi_fgsm"}
    assert len(before) == len(after) == 1 and before != after


def test_a_declared_attack_that_contradicts_the_suite_is_refused(suite_dir):
    with pytest.raises(BenchError, match="declares the attack 'mi_fgsm'"):
        register_user_backend("fgsm", "attacks/mi_fgsm.py:MomentumFGSM", suite_dir, where="attacks.x")
    assert get_attack("fgsm").family == "single-step"
