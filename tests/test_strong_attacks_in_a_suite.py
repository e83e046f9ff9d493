"""APGD-CE, Square, FMN and the ensemble declared in a suite like any attack: run, stored, rendered."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest

from bench.cli import main
from bench.report.security_curves import curve

SUITE = """
name: strong
seed: 0
data: {source: synthetic-faces, n: 160, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 6, lr: 0.05, batch_size: 16}}
attacks:
  fgsm: {attack: fgsm, backend: native, eps: 0.02}
  apgd: {attack: apgd, backend: native, eps: [0.01, 0.02], norm: linf, steps: 10, restarts: 1, step_size: 2.0,
         random_start: true, table: {eps: 0.02}}
  square: {attack: square, backend: native, eps: 0.02, queries: 30, p_init: 0.8, restarts: 1}
  fmn: {attack: fmn, backend: native, steps: 20, max_stepsize: 1.0, min_stepsize: 0.01, gamma: 0.05}
  autoattack:
    attack: ensemble
    backend: native
    eps: 0.02
    norm: linf
    members:
      apgd: {attack: apgd, backend: native, params: {steps: 10}}
      square: {attack: square, backend: native, params: {queries: 30}}
threat_models: {white_box: true}
# no controls or check attacks: this test counts the suite's own cells (tests/test_controls.py covers them)
evaluation: {max_attack_images: 12, attack_batch_size: 12, gradient_norm_images: 8, controls: false,
             checks: {unbounded: null, longer_runs: null}}
"""


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_new_attacks_run_in_a_suite(tmp_path, one_thread):
    suite = tmp_path / "strong.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    home, out = tmp_path / "home", tmp_path / "lb"
    assert main(["run", str(suite), "--home", str(home), "--out", str(out), "--quiet"]) == 0
    text = (out / "strong.md").read_text()
    for key in ("apgd", "square", "fmn", "autoattack"):
        assert key in text, key
    con = sqlite3.connect(home / "results.sqlite")
    crafts = [json.loads(m) for (m,) in con.execute("SELECT metrics FROM cells WHERE kind='craft'")]
    attacks = {json.loads(k)["label"]: json.loads(m) for k, m in
               con.execute("SELECT key, metrics FROM cells WHERE kind='attack'")}
    con.close()
    assert len(crafts) == 6 and all("forward_per_image" in c for c in crafts)
    square = [c for c in crafts if c["backward_per_image"] == 0 and c["forward_per_image"] > 2]
    assert square, "the score-based attack's queries are stored with its examples"
    acc = {k: v["accuracy"]["value"] for k, v in attacks.items()}
    ens = next(v for k, v in acc.items() if k.startswith("autoattack"))
    assert ens <= next(v for k, v in acc.items() if k.startswith("square"))
    # the minimum-norm attack as a security-evaluation curve, at the default declared budgets, with a figure
    section = text.split("## Minimum-norm attacks: robust accuracy against the L2 budget")[1].split("\n## ")[0]
    assert "### fmn (FMN-L2)" in section and "L2 <= 0.25" in section and "L2 <= 4" in section
    assert (out / "strong-fmn-l2-budget.png").stat().st_size > 1000
    # a rerun reuses every cell
    assert main(["run", str(suite), "--home", str(home), "--out", str(out), "--quiet"]) == 0


def test_curve_counts_only_in_budget_successes():
    clean = {"a": True, "b": True, "c": False, "d": True}  # c: missed before any attack
    adv = {"a": False, "b": False, "c": False, "d": True}  # d: the attack failed
    l2 = {"a": 0.3, "b": 5.0, "c": 0.0, "d": 0.0}
    accs, beyond = curve(clean, adv, l2, [0.25, 1.0, 4.0])
    assert [a["k"] for a in accs] == [3, 2, 2] and all(a["n"] == 4 for a in accs)
    assert beyond == 1  # b: fooled only with L2 5 > 4, never counted, flagged
