"""Cell keys: pinned for a fixed tiny plan (a change that re-keys cells must say so here), and a bump of one
kind's declared version (`bench.cells.keys.declare_kind`) re-keys only that kind's cells and the cells whose
keys hash theirs.

Keys chain by hashing: an attack cell hashes its craft's key, the `dip` cell its crafts' keys, the
`dip-adaptive` cells the `dip` cell's key (and a convergence twin its attack cell's), and every cell of a model
(its variants, clean, gradient, craft and section cells) the model's key. Nothing else chains.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
import yaml

import bench.cells.keys as cell_keys
from bench.sections import add_section_cells
from bench.suite.load import load_suite
from bench.suite.plan import Plan
from bench.suite.planner import build_plan

TINY = Path(__file__).parent / "suites" / "tiny.yaml"
DATA_KEY = "0" * 64
ATTACK_IDS = [f"fake-{i}" for i in range(4)]
SECTIONS = {
    "dip": {"classifier": "a", "per_category": 2, "calibration_per_category": 1, "thresholds": [0.5],
            "params": {"iterations": 20, "readout": 10},
            "adaptive": {"images": 4, "readout": "calibrated",
                         "pgd": {"eps": [0.02], "steps": 2, "step_size": 0.01, "eot": 1, "restarts": 1},
                         "convergence": {"steps_factor": 2, "images": 2}}},
    "crosscheck": [{"attack": "fgsm", "model": "b", "implementations": ["native", "art"], "params": {"eps": 0.02},
                    "n": 4}],
}
# the plan's cells per kind, and the SHA-256 of its sorted "kind key" lines (as main built them before per-kind
# versions: every key byte-identical)
PINNED_COUNTS = {"model": 2, "clean": 2, "gradnorm": 2, "craft": 20, "attack": 28, "dip": 1, "dip-adaptive": 2,
                 "crosscheck": 1}
PINNED_DIGEST = "1e4916db610cb32591dc8b2e28034c454b518f2ceb8ce2576cc9e27ac4402a49"
PINNED_MODEL_A = "6387b4b356a12291921dec43de4d72d70921de7ff0d27c38ee37379eaac2bf65"


def tiny_plan(tmp_path: Path) -> Plan:
    suite = {**yaml.safe_load(TINY.read_text()), **SECTIONS}
    path = tmp_path / "tiny-sections.yaml"
    path.write_text(yaml.safe_dump(suite))
    ls = load_suite(path)
    plan = build_plan(ls, DATA_KEY, ATTACK_IDS)
    add_section_cells(ls, plan)
    return plan


def keys(plan: Plan) -> dict[str, str]:
    """cell key -> kind, and the variants' keys (kind "variant")."""
    out = {c.key: c.kind for c in plan.cells()}
    out.update({v.key: "variant" for v in plan.variants.values() if v.defense is not None})
    return out


def test_keys_of_a_fixed_tiny_plan_are_pinned(tmp_path: Path):
    plan = tiny_plan(tmp_path)
    cells = plan.cells()
    assert dict(Counter(c.kind for c in cells)) == PINNED_COUNTS
    lines = "\n".join(sorted(f"{c.kind} {c.key}" for c in cells))
    assert hashlib.sha256(lines.encode()).hexdigest() == PINNED_DIGEST
    assert plan.models["a"].key == PINNED_MODEL_A


# the kinds whose keys a bump of each kind's version changes (its own, and those that hash its keys)
RE_KEYED = {
    "model": {"model", "clean", "gradnorm", "craft", "attack", "dip", "dip-adaptive", "crosscheck"},
    "clean": {"clean"},
    "gradnorm": {"gradnorm"},
    "craft": {"craft", "attack", "dip", "dip-adaptive"},
    "attack": {"attack"},
    "dip": {"dip", "dip-adaptive"},
    "dip-adaptive": {"dip-adaptive"},
    "crosscheck": {"crosscheck"},
}


@pytest.mark.parametrize("kind", sorted(RE_KEYED))
def test_a_version_bump_re_keys_only_its_kind_and_the_cells_that_hash_its_keys(kind, tmp_path, monkeypatch):
    before = keys(tiny_plan(tmp_path))
    monkeypatch.setitem(cell_keys.VERSIONS, kind, (*cell_keys.VERSIONS[kind][:-1], cell_keys.VERSIONS[kind][-1] + 1))
    after = keys(tiny_plan(tmp_path))
    assert len(after) == len(before)
    kept = set(before) & set(after)
    changed = Counter(k for key, k in before.items() if key not in kept)
    assert set(changed) == RE_KEYED[kind]
    assert changed[kind] == Counter(before.values())[kind]  # every cell of the bumped kind


def test_a_kind_has_one_version_and_undeclared_kinds_have_no_key():
    cell_keys.declare_kind("craft", cell_keys.VERSIONS["craft"])  # the same declaration again is fine
    with pytest.raises(ValueError, match="declared twice"):
        cell_keys.declare_kind("craft", (9,))
    with pytest.raises(KeyError, match="not declared"):
        cell_keys.cell_key("no-such-kind", 1)
