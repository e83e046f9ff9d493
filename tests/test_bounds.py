"""Bounds on work and paths (issue 24): iteration caps enforced by validate, a suite's output folder stays
below the working directory, only the selected profile's plug-ins are imported."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import bench, write_suite

from bench.suite.load import load_suite

BASE = {
    "name": "b",
    "data": {"source": "synthetic-faces", "n": 40, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 1}}},
    "attacks": {"p": {"attack": "pgd", "backend": "native", "eps": 0.03, "norm": "linf", "steps": 10,
                      "step_size": 0.01, "random_start": False}},
}


def write(tmp_path: Path, doc: dict) -> Path:
    return write_suite(tmp_path, doc, "b.yaml")


@pytest.mark.parametrize("attack, where", [
    ({"attack": "pgd", "backend": "native", "eps": 0.03, "norm": "linf", "steps": 1_000_000_000, "step_size": 0.01,
      "random_start": False}, "attacks.x.steps: 1000000000 is over the cap of 100,000"),
    ({"attack": "apgd", "backend": "native", "eps": 0.03, "norm": "linf", "steps": 50_000, "restarts": 500,
      "step_size": 2.0, "random_start": True}, "attacks.x: 25,000,000 passes per image"),
    ({"attack": "cw_l2", "backend": "native", "confidence": 0.0, "c_min": 1.0, "c_max": 10.0,
      "binary_search_steps": 5000, "max_iterations": 10, "learning_rate": 0.01, "abort_early": True},
     "attacks.x.binary_search_steps: 5000 is over the cap of 1,000"),
])
def test_work_over_the_caps_is_refused_by_validate(tmp_path, attack, where):
    doc = {**BASE, "attacks": {"x": attack}}
    code, err = bench("validate", str(write(tmp_path, doc)))
    assert code == 2 and where in err and err.count("\n") == 1, err


@pytest.mark.parametrize("folder", ["../../../X", "/tmp/x", "a/../../b"])
def test_a_suites_leaderboard_folder_cannot_climb_out(tmp_path, folder):
    code, err = bench("validate", str(write(tmp_path, {**BASE, "report": {"leaderboard_dir": folder}})))
    assert code == 2 and "report.leaderboard_dir" in err and "give --out on the command line" in err, err
    assert bench("validate", str(write(tmp_path, {**BASE, "report": {"leaderboard_dir": "boards/x"}})))[0] == 0


def test_only_the_selected_profiles_plug_ins_are_imported(tmp_path):
    marker = tmp_path / "RAN"
    (tmp_path / "mine.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from bench.defenses.base import WrapperDefense\n\nclass Mine(WrapperDefense):\n    pass\n")
    doc = {**BASE, "profiles": {"other": {"defenses": {"m": {"use": "mine.py:Mine", "applies_to": ["a"]}}}}}
    path = write(tmp_path, doc)
    load_suite(path, None)  # what `bench run` loads: the selected profile's plug-ins, the others by name
    assert not marker.exists()
    assert bench("validate", str(path))[0] == 0 and not marker.exists()
    (tmp_path / "mine.py").rename(tmp_path / "gone.py")
    code, err = bench("validate", str(path))  # still checked by name: a missing file is found
    assert code == 2 and "plug-in file" in err and "does not exist" in err, err
    (tmp_path / "gone.py").rename(tmp_path / "mine.py")
    load_suite(path, "other")  # selected: imported
    assert marker.exists()
