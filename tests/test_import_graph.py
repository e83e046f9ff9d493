"""The package's own import graph has no cycle, is layered, and its modules import each other at the top level.

The graph is built from the source (`ast`): an edge A -> B for every module-level `import bench.B` or
`from bench.B import x` in A (imports under `if TYPE_CHECKING:` are annotations only and do not run). A
function-level import of a package module is allowed only where it defers an optional or heavy
dependency, with a comment saying why on its line or the line above.

Layers (`LAYERS`, lowest first): a module imports only modules of its own layer or lower ones. The suite is
above the components (data, models, attacks, defenses and the sections' configuration), the cells that run a
plan above the suite, results above running, the report above results.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bench"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _target(name: str, attr: str | None, modules: dict[str, Path]) -> str | None:
    """The package module an import names (`from bench.a import b` is bench.a.b when that is a module)."""
    if attr and f"{name}.{attr}" in modules:
        return f"{name}.{attr}"
    return name if name in modules else None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    out = []
    if isinstance(node, ast.Import):
        out += [a.name for a in node.names if a.name in modules]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("bench"):
        out += [t for a in node.names if (t := _target(node.module, a.name, modules))]
    return out


def module_level(path: Path) -> Iterator[ast.AST]:
    """The statements that run when the module is imported: its body, and the bodies of if/try blocks (not
    functions or classes, not `if TYPE_CHECKING:`)."""
    stack: list[ast.AST] = list(ast.parse(path.read_text()).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack += node.orelse
        elif isinstance(node, ast.If | ast.Try):
            stack += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for h in getattr(node, "handlers", []):
                stack += h.body
        else:
            yield node


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in module_level(path):
            graph[mod].update(t for t in _imports(node, modules) if t != mod)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if colour.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in colour and (found := visit(m)):
                return found
        path.pop()
        colour[n] = 2
        return None

    for n in sorted(graph):
        if n not in colour and (found := visit(n)):
            return found
    return None


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert sum(len(v) for v in graph.values()) > 50  # the graph was really built
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# Third-party modules slow to import: deferring one of them (directly, or through a package module that imports it)
# is the only reason a function may import a package module.
HEAVY = frozenset({"torch", "torchvision", "art", "foolbox", "pandas", "scipy", "matplotlib", "ray", "kornia", "timm",
                   "sklearn"})


def _third_party(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names} & HEAVY
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {node.module.split(".")[0]} & HEAVY
    return set()


def heavy_imports() -> dict[str, set[str]]:
    """Per package module: the heavy third-party modules importing it loads (its module-level imports, and those
    of every package module it imports at module level, its parent packages included)."""
    modules = _modules()
    graph = import_graph()
    own: dict[str, set[str]] = {}
    for mod, path in modules.items():
        own[mod] = set().union(*(_third_party(node) for node in module_level(path)))
    out: dict[str, set[str]] = {}
    for mod in modules:
        seen, todo, heavy = set(), [mod], set()
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            heavy |= own[m]
            parents = [".".join(m.split(".")[:k]) for k in range(1, m.count(".") + 1)]
            todo += [*graph[m], *(p for p in parents if p in modules)]
        out[mod] = heavy
    return out


def lazy_package_imports() -> list[tuple[str, int, str, set[str]]]:
    """(module, line, imported package module, the heavy modules it defers) of every function-level import of a
    package module."""
    modules = _modules()
    heavy = heavy_imports()
    out = []
    for mod, path in modules.items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                for target in _imports(node, modules) if isinstance(node, ast.Import | ast.ImportFrom) else []:
                    out.append((mod, node.lineno, target, heavy[target] - heavy[mod]))
    return out


def test_a_function_imports_a_package_module_only_to_defer_a_heavy_dependency():
    """No function-level import dodges a cycle or merely tidies: each one defers a heavy third-party module (torch,
    pandas, the toolkits, Ray) that the importing module does not load already."""
    assert len(heavy_imports()["bench.models.detector"] & {"torch"}) == 1  # the closure is really computed
    dodges = [f"{mod}:{line}: imports {target} inside a function, which defers nothing heavy"
              for mod, line, target, deferred in lazy_package_imports() if not deferred]
    assert not dodges, "\n".join(dodges)


def test_function_level_imports_say_why():
    bare = []
    for mod, path in _modules().items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    text = lines[node.lineno - 1] + (lines[node.lineno - 2] if node.lineno > 1 else "")
                    if "#" not in text:
                        bare.append(f"{mod}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not bare, "function-level imports without a reason:\n" + "\n".join(bare)


# Lowest first. A module's layer is its longest matching prefix. A section's package is a vertical slice: its
# configuration, registration and computation sit with the components, the modules that plan and compute its
# cells with the running layer, its leaderboard part (when it reads the report's helpers) with the report.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["bench", "bench.errors", "bench.settings", "bench.config",
                    "bench.plugins",  # the plug-in contracts: the loader, the registry pattern, the image contract
                    "bench.results.digests", "bench.results.atomic", "bench.results.integrity",  # the store and what
                    "bench.results.provenance", "bench.results.metrics", "bench.results.records",  # every cell
                    "bench.results.store",  # keeps
                    "bench.models.device",  # CUDA when present: the components' own computations choose with it
                    "bench.cells.keys",  # cell names: the suite's plan builds every key
                    "bench.report.format"]),  # number and markdown formatting: the components' own reports use it
    ("components", ["bench.data", "bench.models", "bench.attacks", "bench.defenses", "bench.dip", "bench.crosscheck",
                    "bench.smoothing", "bench.results.subset_metrics", "bench.sections"]),
    ("suite", ["bench.suite"]),
    ("running", ["bench.cells", "bench.running", "bench.distributed", "bench.results.merge",
                 "bench.dip.protocol", "bench.dip.adaptive", "bench.crosscheck.cells", "bench.smoothing.certify"]),
    ("results", ["bench.results", "bench.crosscheck.stored"]),
    ("report", ["bench.report", "bench.smoothing.report"]),
    ("entry points", ["bench.cli", "bench.__main__", "bench.crosscheck.cli", "bench.crosscheck.__main__"]),
]



def layer_of(module: str) -> int:
    """The index in LAYERS of a module's longest matching prefix (the root `bench` matches itself only)."""
    best, found = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            hit = module == p or (p != "bench" and module.startswith(p + "."))
            if hit and len(p) > best:
                best, found = len(p), i
    return found


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if layer_of(m) < 0)
    assert not missing, "modules with no layer in LAYERS: " + ", ".join(missing)


def test_nothing_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_the_layer_check_finds_an_upward_import():
    assert layer_of("bench.data.sources") < layer_of("bench.suite.load") < layer_of("bench.cells.craft")
    assert layer_of("bench.results.query") < layer_of("bench.report.leaderboard")
    assert layer_of("bench.dip.config") < layer_of("bench.suite.schema") < layer_of("bench.dip.protocol")


@pytest.mark.parametrize("module", ["bench.data.sources", "bench.models", "bench.attacks", "bench.dip",
                                    "bench.dip.config", "bench.crosscheck.entries", "bench.sections"])
def test_components_import_nothing_of_the_suite(module: str):
    """What Python really imports, not only the top-level statements: no `bench.suite` module is loaded."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('bench.suite')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]", f"import {module} loads {out}"


def test_the_package_root_holds_the_entry_points_and_little_else():
    """The folder list reads as the pipeline: a new module goes into the package whose purpose it serves."""
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert root == ["__init__.py", "__main__.py", "cli.py", "errors.py", "settings.py"]
