"""`bench crosscheck`: agreement, strength and cost side by side, verdicts, exit codes, user attacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench.attacks.counting import count_passes
from bench.attacks.params import FGSMParams
from bench.attacks.user import load_user_attack
from bench.crosscheck.cli import main
from bench.crosscheck.compare import Tolerances, crosscheck, crosscheck_records
from bench.errors import BenchError, ContractError
from bench.models import create_model

DOCS = Path(__file__).resolve().parents[1] / "docs" / "custom-attack.md"
COMMON = ["--attack", "fgsm", "--param", "eps=0.03", "--model", "tiny", "--n", "6", "--size", "24", "--seed", "0"]

GOOD = """
import torch
from torch.nn import functional as F

def fgsm(detector, x, y, params):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(detector(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return (x + params.eps * grad.sign()).clamp(0, 1).detach()

class FGSM:
    def __init__(self, params):
        self.params = params

    def __call__(self, detector, x, y):
        return fgsm(detector, x, y, self.params)
"""

BAD = {
    # the classic bug: descending the loss instead of ascending it
    "flipped": "    return (x - params.eps * grad.sign()).clamp(0, 1).detach()",
    "raises": "    raise RuntimeError('out of cheese')",
    "shape": "    return x[:, :, :-1].detach()",
    "range": "    return (x + 5 * params.eps * grad.sign()).detach() + 1.0",
    "nan": "    return x.detach() * float('nan')",
    "uint8": "    return (x * 255).to(torch.uint8)",
}


def write_attack(tmp_path: Path, name: str, last_line: str | None = None) -> Path:
    code = (
        GOOD
        if last_line is None
        else GOOD.replace("    return (x + params.eps * grad.sign()).clamp(0, 1).detach()", last_line)
    )
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return path


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main([*COMMON, *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_correct_user_attack_agrees_and_exits_0(tmp_path, capsys):
    path = write_attack(tmp_path, "good")
    records = tmp_path / "records.json"
    code, out = run_cli(
        capsys,
        "--impl",
        f"{path}:fgsm",
        "--impl",
        "native",
        "--impl",
        "art",
        "--impl",
        "foolbox",
        "--impl",
        f"{path}:FGSM",
        "--json",
        str(records),
    )
    assert code == 0, out
    assert "FAIL" not in out and "overall: PASS" in out
    assert "tolerance max_abs_diff = 1e-06" in out  # tolerances are stated
    rows = json.loads(records.read_text())
    assert {"implementation", "metric", "value", "tolerance", "verdict"} <= set(rows[0])
    verdicts = [r for r in rows if r["verdict"] is not None]
    assert len(verdicts) == 8 and all(r["verdict"] == "pass" for r in verdicts)  # 4 references x 2 metrics


def test_flipped_gradient_is_reported_and_exits_nonzero(tmp_path, capsys):
    path = write_attack(tmp_path, "flipped", BAD["flipped"])
    code, out = run_cli(capsys, "--impl", f"{path}:fgsm", "--impl", "native", "--impl", "art")
    assert code == 1, out
    fails = [line for line in out.splitlines() if line.rstrip().endswith("FAIL") and "max_abs_diff" in line]
    assert len(fails) == 2 and all(f"{path}:fgsm" in line for line in fails)
    # the disagreement is 2 eps: the flipped step goes the other way
    assert re.search(r"max_abs_diff\s+\S+\s+native\s+0\.06", out), out
    assert "overall: FAIL" in out


@pytest.mark.parametrize(
    "bug,message",
    [
        ("raises", "raised RuntimeError: out of cheese"),
        ("shape", "returned shape (6, 3, 23, 24); the input had shape (6, 3, 24, 24)"),
        ("range", "outside [0, 1]"),
        ("nan", "non-finite"),
        ("uint8", "dtype torch.uint8"),
    ],
)
def test_broken_user_attack_is_named_and_others_survive(tmp_path, capsys, bug, message):
    path = write_attack(tmp_path, bug, BAD[bug])
    spec = f"{path}:fgsm"
    code, out = run_cli(capsys, "--impl", "native", "--impl", spec, "--impl", "foolbox")
    assert code == 2, out
    assert f"error in {spec}: {spec}: " in out and message in out, out
    assert re.search(r"^native\s+0\.\d+", out, re.M) and re.search(r"^foolbox\s+0\.\d+", out, re.M)
    assert re.search(r"max_abs_diff\s+native\s+foolbox\s+0\s.*PASS", out), out


def test_unloadable_user_attacks(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_user_attack(str(tmp_path / "missing.py") + ":f")
    bad = tmp_path / "syntax.py"
    bad.write_text("def f(:\n")
    with pytest.raises(ContractError, match="SyntaxError"):
        load_user_attack(f"{bad}:f")
    with pytest.raises(BenchError, match="has no attribute 'nope'"):
        load_user_attack(f"{write_attack(tmp_path, 'ok')}:nope")
    with pytest.raises(BenchError, match="no module named"):
        load_user_attack("no_such_package_xyz.attacks:f")
    assert load_user_attack("bench.attacks.native:fgsm").obj.__name__ == "fgsm"  # dotted module path


def test_bad_input_exits_2(capsys):
    assert main([*COMMON, "--param", "eps=2"]) == 2
    assert main([*COMMON, "--param", "nonsense=1"]) == 2
    assert main([*COMMON, "--tol", "max_abs_diff=-1"]) == 2
    assert main([*COMMON, "--impl", "native"]) == 2  # nothing to compare with
    err = capsys.readouterr().err
    assert "--param eps" in err and "--param nonsense" in err and "--tol max_abs_diff" in err


def test_unknown_backend_is_reported_without_losing_results(capsys):
    code, out = run_cli(capsys, "--impl", "native", "--impl", "cleverhans", "--impl", "foolbox")
    assert code == 2 and "error in cleverhans" in out and "unknown implementation of fgsm" in out
    assert re.search(r"^foolbox\s+0\.\d+", out, re.M)


def test_passes_are_counted_for_every_implementation():
    torch.manual_seed(0)
    det = create_model("resnet18", 32).eval()  # not a Sequential: hooks sit on the net itself
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([0, 1, 0])
    report = crosscheck(det, x, y, "fgsm", FGSMParams(eps=0.01), ["native", "art", "foolbox"])
    per_image = {r.name: r.passes.per_image(3) for r in report.results}
    # native and ART: one forward and one backward; Foolbox checks the result with one more forward
    assert per_image == {"native": (1.0, 1.0), "art": (1.0, 1.0), "foolbox": (2.0, 1.0)}
    with count_passes(det) as c:
        det.predict_proba(x)
    assert (c.forward, c.backward) == (3, 0)
    rows = crosscheck_records(report)
    fwd = {r["implementation"]: r["value"] for r in rows if r["metric"] == "forward_per_image"}
    assert fwd == {"native": 1.0, "art": 1.0, "foolbox": 2.0}


def test_cw_crosscheck_reports_strength_cost_and_the_c_search_difference():
    torch.manual_seed(0)
    det = create_model("tiny", 24).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 24, 24, generator=g), torch.tensor([0, 1, 0, 1])
    params = dict(confidence=0.0, c_min=1.0, c_max=100.0, binary_search_steps=2, max_iterations=10, abort_early=False)
    report = crosscheck(det, x, y, "cw_l2", params, ["native", "foolbox"], Tolerances(median_l2_ratio=10.0))
    text = report.to_text()
    assert "c search differs" in text and "median_l2_ratio" in text and "success_rate_gap" in text
    nat, fb = (r.summary(4) for r in report.results)
    assert 10 <= nat["forward_per_image"] == nat["backward_per_image"] <= 20 and nat["seconds_per_image"] > 0
    # Foolbox: 2 steps x 10 iterations, plus one forward to check the result
    assert (fb["forward_per_image"], fb["backward_per_image"]) == (21, 20)
    assert report.to_markdown().count("|") > 20


def test_bench_crosscheck_command_exits_1_on_disagreement(tmp_path):
    """The real command line, `python -m bench crosscheck` (exit 0 is covered in-process above)."""
    bad = write_attack(tmp_path, "bad2", BAD["flipped"])
    cmd = [sys.executable, "-m", "bench", "crosscheck", *COMMON, "--impl", f"{bad}:fgsm", "--impl", "native"]
    wrong = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "overall: FAIL" in wrong.stdout


def test_docs_worked_example_passes(tmp_path, capsys):
    """The example in docs/custom-attack.md is cross-checked against both toolkits and agrees."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, "docs/custom-attack.md has no python example"
    path = tmp_path / "my_fgsm.py"
    path.write_text(blocks[0])
    code, out = run_cli(
        capsys,
        "--impl",
        f"{path}:fgsm",
        "--impl",
        "native",
        "--impl",
        "art",
        "--impl",
        "foolbox",
        "--impl",
        f"{path}:FGSM",
    )
    assert code == 0, out
