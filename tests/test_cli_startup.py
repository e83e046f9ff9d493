"""The command line starts without torch or the toolkits: `import bench.cli`, `bench list` and `bench validate`
of a suite without user images import none of them (each in a fresh interpreter, read from `sys.modules`); and
what they read instead of the heavy modules (the lazy tables of backends, models, cell kinds and the built-in
defenses' parameter checks) agrees with what those modules register and do. The start-up time itself is
measured by benchmarks/cli_startup.py."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "art", "foolbox", "kornia", "timm")


def _modules_after(code: str) -> tuple[set[str], str]:
    """The heavy top-level modules imported by `code` in a fresh interpreter, and what it printed."""
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    *printed, last = out.stdout.strip().splitlines()
    return set(json.loads(last)), "\n".join(printed)


def test_importing_the_cli_imports_no_torch():
    heavy, _ = _modules_after("import bench.cli")
    assert heavy == set()


def test_list_and_validate_import_no_torch():
    heavy, printed = _modules_after("from bench.cli import main\nmain(['list'])")
    assert heavy == set()
    assert "fgsm" in printed and "art, foolbox, native" in printed and "resnet18" in printed and "jpeg" in printed
    heavy, printed = _modules_after(f"from bench.cli import main\nassert main(['validate', '{ROOT}/suites/paper.yaml'])"
                                    " == 0")
    assert heavy == set() and "valid" in printed


def test_the_lazy_backend_table_matches_what_the_modules_register():
    from bench.attacks.registry import BUILTIN_BACKENDS, list_attacks

    modules = {m for backends in BUILTIN_BACKENDS.values() for m in backends.values()}
    for m in modules:
        importlib.import_module(m)
    for spec in list_attacks():
        registered = {name: b.fn.__module__ for name, b in spec.backends._fns.items()
                      if b.fn.__module__.startswith("bench.attacks.") and ":" not in name}  # not a user plug-in
        assert registered == BUILTIN_BACKENDS.get(spec.name, {}), spec.name


def test_the_lazy_model_and_cell_kind_tables_resolve():
    from bench.cells.registry import BUILTIN_KINDS, CELL_KINDS, compute_fn
    from bench.models.registry import MODELS
    from bench.sections import sections

    for name in MODELS.names():
        target = MODELS.get(name, "model")
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            assert callable(getattr(importlib.import_module(module), attr)), name
    for kind in [*BUILTIN_KINDS, *(s.kind for s in sections() if s.computes)]:
        assert callable(compute_fn(kind)) and kind in CELL_KINDS


@pytest.mark.parametrize(("use", "params"), [
    ("jpeg", {"quality": 75}), ("jpeg", {"quality": 0}), ("jpeg", {"quality": 75, "subsampling": "4:1:1"}),
    ("jpeg", {"qualty": 75}), ("lipschitz", {"lambda": 50}), ("lipschitz", {"lambda": -1}),
    ("lipschitz", {"lambda": 5, "lam": 5}), ("blur", {"fraction": 0.4}), ("blur", {"fraction": 2}),
    ("blur", {"sigma": [3, 1]}), ("blur", {"frac": 0.4}), ("dip", {"iterations": 10, "readout": 5}),
    ("dip", {"iterations": -1}),
])
def test_built_in_defenses_are_checked_as_building_them_would(use, params):
    """`bench validate` checks a built-in's parameters without building it: the same verdict and kind."""
    from bench.defenses.registry import check_defense, create_defense, defense_kinds

    def outcome(fn):
        try:
            return "ok", fn()
        except BenchError as exc:
            return "error", exc.where
    light = outcome(lambda: check_defense(use, params, where=f"defenses.{use}"))
    built = outcome(lambda: defense_kinds(create_defense(use, params, where=f"defenses.{use}")))
    assert light == built
