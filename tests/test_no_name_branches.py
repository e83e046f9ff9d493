"""No module of `bench` decides behaviour by a registered attack's, backend's, control's or check's name, or by a
row label's text: what differs is declared where the thing is registered (`AttackSpec`: family, norm, budget,
iterations, margin, control kind; `Backend`: EOT, unused parameters, imports; rows: `may_be_best`).

The scan (`ast`) flags a comparison (`==`, `!=`, `in`, `not in`, ...) with a string constant, or a tuple, list or
set of them, that is one of those names, and a `str.startswith` / `str.endswith` with one. A second scan flags a
read (`x["name"]`, `x.get("name")`) of a parameter an attack declares as its budget, iterations or margin outside
`bench/attacks/`: code elsewhere reads the declaration (`AttackSpec.budget_of`, `iterations_of`, `margin_of`).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from bench.attacks.registry import ATTACKS, BUILTIN_BACKENDS
from bench.suite.controls import CONVERGENCE_CHECK, CONVERGENCE_STRONGER_CHECK, UNBOUNDED_CHECK

PACKAGE = Path(__file__).resolve().parents[1] / "bench"
ROW_LABEL_MARKS = {"Average", "†", "‡"}  # the text the report puts on averages, degenerate models, attacks that gave up


def registered_names() -> set[str]:
    for modules in BUILTIN_BACKENDS.values():
        for module in modules.values():
            importlib.import_module(module)  # registers the backends
    attacks = {s.name for s in ATTACKS.values()}
    backends = {b for s in ATTACKS.values() for b in s.backends}
    return attacks | backends | {UNBOUNDED_CHECK, CONVERGENCE_CHECK, CONVERGENCE_STRONGER_CHECK} | ROW_LABEL_MARKS


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for e in node.elts for s in _strings(e)]
    return []


def name_branches(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison with, or prefix / suffix test for, one of `names` in `source`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("startswith", "endswith"):
            operands = list(node.args)
        else:
            continue
        out += [(node.lineno, s) for x in operands for s in _strings(x) if s in names]
    return out


def test_the_names_are_really_collected():
    names = registered_names()
    assert {"fgsm", "cw_l2", "ensemble", "storage", "noise_l2", "native", "art", "foolbox", "unbounded"} <= names


def test_the_scan_finds_a_name_branch():
    source = ('def f(r, spec):\n'
              '    if r["attack"] == "storage":\n'
              '        return 1\n'
              '    if spec.backend not in ("native", "other"):\n'
              '        return 2\n'
              '    return str(r[0]).startswith("Average")\n')
    assert name_branches(source, registered_names()) == [(2, "storage"), (4, "native"), (6, "Average")]
    assert name_branches('x = {"storage": 1}\ny = f("native")\n', registered_names()) == []  # naming is not branching


def test_no_module_branches_on_a_registered_name():
    names = registered_names()
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}" for path in sorted(PACKAGE.rglob("*.py"))
             for line, name in name_branches(path.read_text(), names)]
    assert not found, "behaviour read from a name (declare it where the thing is registered):\n" + "\n".join(found)


def declared_parameters() -> set[str]:
    registered_names()
    return {p for s in ATTACKS.values() for p in (s.budget, s.iterations, s.margin) if p}


def parameter_reads(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every `x["name"]` or `x.get("name", ...)` of one of `names` in `source`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant):
            key = node.args[0].value
        else:
            continue
        if key in names:
            out.append((node.lineno, key))
    return out


def test_the_parameter_scan_finds_a_guess():
    assert {"eps", "steps", "max_iterations", "confidence"} <= declared_parameters()
    assert parameter_reads('k = r["params"].get("confidence")\nn = p["steps"]\nq = {"eps": 1}\n',
                           declared_parameters()) == [(1, "confidence"), (2, "steps")]


def test_no_module_outside_the_attacks_reads_a_declared_parameter_by_its_name():
    names = declared_parameters()
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.relative_to(PACKAGE).parts[0] != "attacks"
             for line, name in parameter_reads(path.read_text(), names)]
    assert not found, "a parameter read by its name (read the attack's declaration):\n" + "\n".join(found)
