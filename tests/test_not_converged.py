"""not-converged reruns the suite's own iterative and minimum-norm attacks with twice their iterations: on a tiny
suite it fires on an APGD given too few steps and stays quiet on a converged one."""

from __future__ import annotations

import pytest
import yaml

from bench.cli import main
from bench.data.sources import load_data
from bench.errors import BenchError
from bench.report.sanity import run_checks
from bench.results.query import load_results
from bench.results.store import ResultStore
from bench.suite.load import load_suite
from bench.suite.planner import plan_for_data

SUITE = {
    "name": "conv", "seed": 0,
    "data": {"source": "synthetic-faces", "n": 240, "size": 32},
    "models": {"m": {"arch": "tiny", "recipe": {"epochs": 10, "lr": 0.05, "batch_size": 16}}},
    "attacks": {
        # one step of a quarter of eps: twice the steps go twice as far
        "short": {"attack": "apgd", "backend": "native", "eps": 0.06, "norm": "linf", "steps": 1, "restarts": 1,
                  "step_size": 0.25, "random_start": False},
        "enough": {"attack": "apgd", "backend": "native", "eps": 0.06, "norm": "linf", "steps": 10, "restarts": 1,
                   "step_size": 2.0, "random_start": False},
        "fgsm": {"attack": "fgsm", "backend": "native", "eps": 0.03},  # single-step: nothing to rerun
    },
    "threat_models": {"white_box": True},
    "evaluation": {"max_attack_images": 24, "attack_batch_size": 24, "gradient_norm_images": 8, "storage": "png",
                   "controls": False, "checks": {"n": 24, "unbounded": None}},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("conv")
    path = base / "conv.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    assert main(["run", str(path), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    return path, base


def test_reruns_are_the_suites_attacks_with_twice_their_iterations(run):
    path, _ = run
    ls = load_suite(path)
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    checks = {c.attack.key: c for c in plan.attacks if c.attack.role == "check"}
    assert set(checks) == {"short-x2", "enough-x2"}  # read from the declarations: FGSM has no iterations
    suite = {c.attack.key: c for c in plan.attacks if c.attack.role == "attack"}
    for key, steps in (("short", 2), ("enough", 20)):
        rerun = checks[f"{key}-x2"]
        assert rerun.attack.params == {**suite[key].attack.params, "steps": steps}
        assert rerun.attack.reference == suite[key].craft.key and suite[key].craft.key in rerun.craft.deps


def test_fires_on_too_few_steps_and_stays_quiet_on_enough(run):
    path, base = run
    results = load_results(ResultStore(base / "home" / "results.sqlite"), "conv", None)
    rows = results.attacks.to_dict("records")
    by_key = {r["attack_key"]: r for r in rows}
    short, rerun = by_key["short"]["metrics"]["accuracy"], by_key["short-x2"]["metrics"]
    assert rerun["reference_accuracy"] == short  # the suite attack's examples of the same 24 fakes, rescored
    flags = [f for f in run_checks(rows) if f.check == "not-converged"]
    assert len(flags) == 1 and "short" in flags[0].message and "steps=2 instead of 1" in flags[0].message, flags
    text = (base / "lb" / "conv.md").read_text()
    assert "not-converged reran the table point of each iterative and minimum-norm attack" in text


def test_iteration_parameter_must_be_declared_on_the_registration():
    from bench.attacks.params import AttackParams
    from bench.attacks.registry import declare_attack

    class P(AttackParams):
        eps: float = 0.1

    with pytest.raises(BenchError, match="not an integer parameter"):
        declare_attack(P, name="no-such-steps", title="x", family="iterative", norm="linf", budget="eps",
                       deterministic=True, iterations="steps")
