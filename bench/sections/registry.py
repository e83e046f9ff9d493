"""Optional suite sections (the DIP protocol, cross-checks, certificates, the security-evaluation curves): each
declares its own top-level suite field and its checks, the cell kinds it adds to the plan and its part of the
leaderboard, in one registration. The suite's schema (`bench.suite.schema.suite_model`) composes the sections'
fields; no section touches the loader's or the executor's internals.

A registration imports nothing above the suite: the functions that plan, compute and render (which need the
plan, torch or the report) are named by `deferred("module:function")` and imported when first called. A
plug-in section is a `Section` in a file outside the package, named in a suite's `sections:` list
(`load_plugin_section`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError, ContractError
from bench.plugins.loader import load_object
from bench.plugins.registry import Registry

if TYPE_CHECKING:  # annotations only: the loader and the plan are above the sections
    from bench.suite.loaded import LoadedSuite
    from bench.suite.plan import Plan, SectionCell


@dataclass(frozen=True)
class Deferred:
    """A function named by `module:function`, imported on its first call."""

    spec: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, name = self.spec.partition(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def deferred(spec: str) -> Deferred:
    """`module:function`, called as the function (imported then): what a registration names its planning,
    computing and rendering functions by."""
    return Deferred(spec)


def no_cells(ls: LoadedSuite, plan: Plan) -> list[SectionCell]:
    """The cells of a section that only renders stored results."""
    return []


def no_part(board: Any, out_dir: Any, stem: str) -> str:
    """The leaderboard part of a section whose cells another section renders."""
    return ""


@dataclass(frozen=True)
class Section:
    """A suite section.

    `field` names its top-level suite field, `schema` that field's type (a pydantic model, `X | None`, a list)
    and `default` its default (a value or a pydantic `Field(...)`); `check(ls, load_plugins)` checks what the
    schema cannot (references to the suite's models, an attack's parameters), raising a `BenchError` that
    names the field. `cells(ls, plan)` lists the section's cells (kind = `kind`); `render(board, out_dir,
    stem)` writes its leaderboard part from stored results; `sharded` says which shard of a `--shard` run
    computes them ("first": shard 0; "never": unsharded runs only). With `appendix`, the part goes to the
    leaderboard's appendix and `brief(board)` (when given) says in a few lines in the main document what it
    found. `computes` names the module that registers the kind's compute function
    (`bench.cells.registry.computes`): imported when a cell of the kind is first computed, so reading results
    needs none of it."""

    kind: str
    cells: Callable[[LoadedSuite, Plan], list[SectionCell]] = no_cells
    render: Callable[[Any, Any, str], str] = no_part
    sharded: str = "first"
    order: int = 0
    appendix: bool = False
    brief: Callable[[Any], str] | None = None
    computes: str | None = None  # the module registering the compute function of `kind` (imported when needed)
    field: str | None = None  # the section's own top-level suite field (None: it reads the suite's other fields)
    schema: Any = None  # the field's type
    default: Any = None  # the field's default: a value, or a pydantic Field(...)
    check: Callable[[LoadedSuite, bool], None] | None = None


SECTIONS: Registry[Section] = Registry("section")
_BUILTIN: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    """Register a built-in section (a plug-in section is registered by the suite that names it)."""
    _BUILTIN[section.kind] = section
    return SECTIONS.register(section.kind, section)


def sections() -> list[Section]:
    """The registered sections, in the order the leaderboard shows them (DIP before cross-checks)."""
    return sorted(SECTIONS.values(), key=lambda s: s.order)


def builtin_sections() -> list[Section]:
    """The sections every suite has, in the leaderboard's order."""
    return sorted(_BUILTIN.values(), key=lambda s: s.order)


def section_of(kind: str) -> Section | None:
    return SECTIONS.find(kind)


def load_plugin_section(spec: str, where: str, base_dir: Path | str | None) -> Section:
    """The `Section` a suite's `sections:` entry names (`file.py:NAME` or `module:NAME`), registered so that its
    cells are computed and rendered like a built-in section's (a changed file replaces its earlier version)."""
    obj = load_object(spec, where, base_dir)
    if not isinstance(obj, Section):
        raise ContractError(where, f"{spec} is a {type(obj).__name__}, not a bench.sections.Section")
    builtin = _BUILTIN.get(obj.kind)
    if builtin is not None and builtin is not obj:
        raise BenchError(where, f"{spec}: kind {obj.kind!r} is a built-in section's; give the section its own kind")
    for other in _BUILTIN.values():
        if obj.field is not None and other.field == obj.field and other is not obj:
            raise BenchError(where, f"{spec}: field {obj.field!r} is the built-in section {other.kind!r}'s")
    if obj.field is not None and not obj.field.isidentifier():
        raise ContractError(where, f"{spec}: field {obj.field!r} is not a name")
    SECTIONS.register(obj.kind, obj)
    return obj


def add_section_cells(ls: LoadedSuite, plan: Plan) -> None:
    """Append the cells of every section of the suite (`ls.sections`) to the plan (after the cells they depend
    on)."""
    for sec in ls.sections:
        plan.sections.extend(sec.cells(ls, plan))
