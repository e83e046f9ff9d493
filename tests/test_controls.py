"""Controls: the stored storage-only and noise cells equal a hand computation on a tiny suite."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import yaml

from bench.cli import main
from bench.data.sources import load_data
from bench.models.checkpoint import load_saved_detector
from bench.report.sanity import run_checks
from bench.results.query import load_results
from bench.results.store import ResultStore
from bench.suite.load import load_suite
from bench.suite.planner import plan_for_data

SUITE = {
    "name": "controls", "seed": 3,
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"m": {"arch": "tiny", "recipe": {"epochs": 4, "lr": 0.05, "batch_size": 16}}},
    "attacks": {
        "fgsm": {"attack": "fgsm", "backend": "native", "eps": [0.01, 0.03], "table": {"eps": 0.03}},
        "cw": {"attack": "cw_l2", "backend": "native", "confidence": 0.0, "c_min": 1.0, "c_max": 100.0,
               "binary_search_steps": 2, "max_iterations": 10, "learning_rate": 0.05, "abort_early": True},
    },
    "evaluation": {"max_attack_images": 20, "attack_batch_size": 20, "gradient_norm_images": 8, "storage": "png",
                   "checks": {"n": 8}},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("controls")
    path = base / "controls.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    assert main(["run", str(path), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    return path, base


def _by_hand(det, x: torch.Tensor, seed: int, eps: float | None) -> np.ndarray:
    """Detected (P(real) < 0.5) after sign noise of size eps (none: the image itself) and 8-bit PNG storage. The
    noise runs at eps on the 8-bit grid, floor(eps 255) / 255, so that its 8-bit image stays within eps."""
    out = []
    for xi in x:
        if eps is not None:
            rng = np.random.default_rng([seed, zlib.crc32(xi.numpy().tobytes())])
            sign = rng.integers(0, 2, size=tuple(xi.shape)).astype(np.float32) * 2 - 1
            xi = (xi + np.floor(eps * 255 + 1e-4) / 255 * torch.from_numpy(sign)).clamp(0, 1)
        out.append(torch.round(xi * 255).clamp(0, 255) / 255)
    with torch.no_grad():
        p_real = det.predict_proba(torch.stack(out))[:, 1].numpy()
    return p_real < 0.5


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_controls_equal_a_hand_computation(run):
    path, base = run
    ls = load_suite(path)
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    store = ResultStore(base / "home" / "results.sqlite")
    index = {i: n for n, i in enumerate(test.ids)}
    x = test.images[[index[i] for i in plan.attack_ids]]
    mc = plan.models["m"]
    det = load_saved_detector(base / "home" / "checkpoints" / f"m-{mc.key[:16]}.safetensors").eval()
    controls = {c.attack.label: c for c in plan.attacks if c.attack.role == "control"}
    assert set(controls) == {"storage", "noise[eps=0.01]", "noise[eps=0.03]", "noise_l2[of_label=cw]"}
    for label, eps in (("storage", None), ("noise[eps=0.01]", 0.01), ("noise[eps=0.03]", 0.03)):
        acc = store.get(controls[label].key).metrics["accuracy"]
        detected = _by_hand(det, x, ls.suite.seed, eps)
        assert (acc["k"], acc["n"]) == (int(detected.sum()), len(x)), label
    # the L2 noise has the median L2, before storage, of the examples CW perturbed on the same model (before
    # clipping); the images CW returned unperturbed (L2 ~1e-5: its tanh round trip) do not count
    cw = next(c for c in plan.attacks if c.attack.key == "cw" and c.threat == "white-box")
    l2 = torch.load(base / "home" / "adversarial" / f"{cw.craft.key[:24]}.l2-before.pt", weights_only=True).numpy()
    assert (l2 < 1e-3).sum() >= 1 and (l2 > 0.1).sum() >= 3, "pick CW settings that leave some images unperturbed"
    by_hand = float(np.median(l2[l2 >= 1e-3]))
    noise_l2 = store.get(controls["noise_l2[of_label=cw]"].craft.key).metrics
    assert noise_l2["l2_before"]["median"] <= by_hand + 1e-4  # clipping to [0, 1] only shrinks it (here by ~0.4%)
    assert noise_l2["l2_before"]["median"] > 0.98 * by_hand


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_controls_are_shown_never_ranked_and_norms_have_both_columns(run):
    path, base = run
    text = (base / "lb" / "controls.md").read_text()
    assert "Storage only (control)" in text and "Noise at eps 0.03 (control)" in text
    assert "(noise control, not an attack)" in text  # a noise row in the per-budget table
    assert "Mean L2 before storage" in text and "Mean L2 after png" in text
    assert "c_max=100.0 (not used" not in text  # the native CW uses c_max
    results = load_results(ResultStore(base / "home" / "results.sqlite"), "controls", None)
    ranking = text.split("## Defense ranking")[1].split("##")[0]
    assert "storage" not in ranking and "noise" not in ranking
    roles = set(results.attacks["role"])
    assert roles == {"attack", "control", "check"}
    flags = run_checks(results.attacks.to_dict("records"))
    assert not [f for f in flags if f.check == "unbounded-attack-fails"]  # the full-strength check passes


def test_controls_switch_off(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "evaluation": {**SUITE["evaluation"], "controls": False}}))
    ls = load_suite(path)
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    assert not [c for c in plan.attacks if c.attack.role == "control"]
    assert {c.attack.key for c in plan.attacks if c.attack.role == "check"} == {"unbounded", "cw-x2"}


def test_check_attack_parameters_are_validated(tmp_path):
    from bench.errors import BenchError

    bad = {**SUITE["evaluation"], "checks": {"unbounded": {"attack": "pgd", "params": {"steps": 0}}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "evaluation": bad}))
    with pytest.raises(BenchError) as e:  # found when the suite is loaded (what `bench validate` does), not mid-run
        load_suite(path)
    assert "evaluation.checks.unbounded.params" in e.value.where


def test_convergence_check_with_restarts(tmp_path):
    conv = {"attack": "pgd", "params": {"eps": 0.02, "steps": 5, "step_size": 0.005, "random_start": False},
            "steps_factor": 2, "restarts": 3}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "evaluation": {**SUITE["evaluation"], "checks": {"convergence": conv}}}))
    ls = load_suite(path)
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    points = {c.attack.key: c.attack for c in plan.attacks if c.attack.role == "check"}
    assert (points["convergence"].params["steps"], points["convergence"].restarts) == (5, 1)
    strong = points["convergence-stronger"]
    assert (strong.params["steps"], strong.params["random_start"], strong.restarts) == (10, True, 3)


def test_noise_radius_counts_only_perturbed_images():
    from bench.attacks.controls import NoiseL2Params, gaussian_noise_l2, noise_radius

    assert noise_radius(np.array([0.0, 0.0, 0.0, 1.0, 2.0, 4.0], dtype=np.float32)) == 2.0  # not the median 0.5
    assert noise_radius(np.array([1e-5, 3.0], dtype=np.float32)) == 3.0  # float round-off is no perturbation
    assert noise_radius(np.zeros(4, dtype=np.float32)) == 0.0  # nothing perturbed: a no-op control
    x = torch.rand(3, 3, 8, 8) * 0.5 + 0.25
    assert torch.equal(gaussian_noise_l2(None, x, torch.zeros(3), NoiseL2Params(l2=0.0)), x)
    out = gaussian_noise_l2(None, x, torch.zeros(3), NoiseL2Params(l2=0.3))
    assert (out - x).flatten(1).norm(dim=1).tolist() == pytest.approx([0.3] * 3, abs=1e-4)  # no clipping here


def test_an_l2_budget_gets_an_l2_noise_control(tmp_path):
    attacks = {**SUITE["attacks"], "pgd2": {"attack": "pgd", "backend": "native", "eps": [0.5, 1.0], "norm": "l2",
                                            "steps": 3, "step_size": 0.2, "random_start": False}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "attacks": attacks}))
    ls = load_suite(path)
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    controls = {c.attack.label: c.attack for c in plan.attacks if c.attack.role == "control"}
    assert {"noise_l2[l2=0.5]", "noise_l2[l2=1.0]"} <= set(controls)
    assert controls["noise_l2[l2=0.5]"].params["l2"] == 0.5 and not controls["noise_l2[l2=0.5]"].params["of"]
    assert "noise[eps=0.5]" not in controls  # an L2 budget gets no sign noise


def test_an_l2_attacks_table_shows_its_l2_noise_control(tmp_path, one_thread):
    """The L2 noise control declares no budget (its size is `l2`, or sized by an attack): its column and its rows
    in the per-budget table still appear beside an L2 attack at that budget (a stored row's budget is NaN)."""
    attacks = {"pgd2": {"attack": "pgd", "backend": "native", "eps": [0.5, 1.0], "norm": "l2", "steps": 3,
                        "step_size": 0.2, "random_start": False, "table": {"eps": 0.5}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "attacks": attacks, "evaluation": {
        **SUITE["evaluation"], "storage": "jpeg", "max_attack_images": 8, "checks": {"n": 4, "longer_runs": None}}}))
    assert main(["run", str(path), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet"]) == 0
    text = (tmp_path / "lb" / "controls.md").read_text()
    assert "Mean L2 after jpeg q95" in text  # scored as the paper suite stores: JPEG
    assert "L2 noise at eps 0.5 (control)" in text
    assert "(L2 noise control, not an attack)" in text
