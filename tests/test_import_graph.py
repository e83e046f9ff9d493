"""The package's own import graph has no cycle, and its modules import each other at the top level.

The graph is built from the source (`ast`): an edge A -> B for every module-level `import bench.B` or
`from bench.B import x` in A (imports under `if TYPE_CHECKING:` are annotations only and do not run). A
function-level import of a package module is allowed only where it defers an optional or heavy
dependency, with a comment saying why on its line or the line above.
"""

from __future__ import annotations

import ast
from pathlib import Path

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


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        stack: list[ast.AST] = list(tree.body)
        while stack:  # module level: the body, and the bodies of if/try blocks (not functions or classes)
            node = stack.pop()
            if isinstance(node, ast.If) and _is_type_checking(node):
                stack += node.orelse
            elif isinstance(node, ast.If | ast.Try):
                stack += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
                for h in getattr(node, "handlers", []):
                    stack += h.body
            else:
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


def test_function_level_imports_of_the_package_say_why():
    modules = _modules()
    bare = []
    for mod, path in modules.items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                text = lines[node.lineno - 1] + (lines[node.lineno - 2] if node.lineno > 1 else "")
                if "#" not in text:
                    bare.append(f"{mod}:{node.lineno}: {lines[node.lineno - 1].strip()}")
                elif _imports(node, modules) and "lazy" not in text.lower():
                    bare.append(f"{mod}:{node.lineno}: {lines[node.lineno - 1].strip()} (not marked lazy)")
    assert not bare, "function-level imports without a reason:\n" + "\n".join(bare)
