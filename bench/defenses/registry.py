"""Defense registry and loader: built-ins by name, a user's defense by `module:Class` or `file.py:Class`.

`create_defense(use, params, where)` returns a configured defense instance whose `name` is set; every
error is a `BenchError` (or `ContractError`) whose `where` names the defense. A user's defense is
found relative to `base_dir` (the suite file's folder):

- `path/to/file.py:ClassName`: the file is loaded as a module (it need not be on `sys.path`);
- `package.module:ClassName`: imported with `base_dir` first on `sys.path`.

Parameters are passed as keyword arguments, or to the class's `from_params(params)` when it has one.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from bench.defenses.builtin_params import BUILTIN_CHECKS
from bench.errors import BenchError, ContractError, short
from bench.plugins.loader import is_file_target, load_module, split_spec
from bench.plugins.registry import Registry

__all__ = [
    "KINDS",
    "check_defense",
    "create_defense",
    "defense_kind",
    "defense_kinds",
    "list_defenses",
    "register_defense",
    "resolve_defense_class",
]

KINDS = ("training", "preprocessor", "wrapper")  # the three defense kinds (bench.defenses.base)


def defense_kind(obj: object) -> str:
    """The kind of a defense instance or class (`bench.defenses.base.defense_kind`, imported on use: torch)."""
    from bench.defenses.base import defense_kind as kind  # lazy: the defense classes import torch

    return kind(obj)


def defense_kinds(obj: object) -> tuple[str, ...]:
    """Every kind a defense instance or class acts as (`bench.defenses.base.defense_kinds`, imported on use)."""
    from bench.defenses.base import defense_kinds as kinds  # lazy: the defense classes import torch

    return kinds(obj)

DEFENSES: Registry[type] = Registry("defense")
# Built-ins, imported on first use (the preprocessors import ART). A value without ":" names a module
# that registers itself on import, or holds one defense class (or several, one with `name` = the key).
_BUILTINS: dict[str, str] = {
    "lipschitz": "bench.defenses.lipschitz:LipschitzRegularisation",
    "blur": "bench.defenses.blur:BlurAugmentation",
    "jpeg": "bench.defenses.jpeg:JpegDefense",
    "smoothing": "bench.smoothing.defense:RandomizedSmoothing",
    "dip": "bench.dip.preprocessor:DIPPreprocessor",
}


def register_defense(name: str, cls: type | None = None):
    """Register a defense class under `name` (overrides a built-in of that name); without `cls`, a
    class decorator."""
    return DEFENSES.register(name, cls)


def list_defenses() -> list[str]:
    """Registered and built-in names (a built-in whose module is absent is left out)."""
    names = set(DEFENSES.names())
    for name, target in _BUILTINS.items():
        module = target.partition(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.add(name)
    return sorted(names)


def _is_defense_class(obj: object) -> bool:
    if not inspect.isclass(obj):
        return False
    try:
        defense_kind(obj)
    except ContractError:
        return False
    return True


def _builtin_class(name: str, where: str) -> type | None:
    if name in DEFENSES:
        return DEFENSES.find(name)
    target = _BUILTINS.get(name)
    if target is None:
        return None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise BenchError(where, f"built-in defense {name!r} cannot be imported: {exc}") from exc
    if cls_name:
        return getattr(module, cls_name)
    if name in DEFENSES:  # the module registered itself
        return DEFENSES.find(name)
    found = [v for v in vars(module).values() if _is_defense_class(v) and v.__module__ == module_name]
    named = [v for v in found if getattr(v, "name", None) == name]
    if len(named) == 1 or len(found) == 1:
        return (named or found)[0]
    raise BenchError(where, f"module {module_name} defines no single defense class for {name!r}")


def resolve_defense_class(use: str, where: str, base_dir: str | Path | None = None) -> type:
    """The class that `use` names: a built-in name, `module.sub:Class` or `path/file.py:Class`."""
    if not isinstance(use, str) or not use.strip():
        raise BenchError(where, f"expected a defense name or 'module:Class' / 'file.py:Class', got {use!r}")
    use = use.strip()
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    if ":" not in use:
        cls = _builtin_class(use, where)
        if cls is None:
            raise BenchError(
                where,
                f"unknown defense {use!r}; built-ins: {', '.join(list_defenses())}; "
                "a defense of your own is named as 'file.py:ClassName' or 'module:ClassName'",
            )
        return cls
    target, cls_name = split_spec(use, where)
    module = load_module(target, where, base)
    origin = target if is_file_target(target) else f"module {target}"
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = sorted(k for k, v in vars(module).items() if _is_defense_class(v) and v.__module__ == module.__name__)
        hint = f"; defense classes there: {', '.join(found)}" if found else ""
        raise BenchError(where, f"{origin} has no class {cls_name!r}{hint}")
    if not inspect.isclass(cls):
        raise ContractError(where, f"{use} is a {type(cls).__name__}, not a class")
    if not _is_defense_class(cls):
        raise ContractError(
            where,
            f"{use} is not a defense: subclass bench.defenses.base.TrainingDefense, PreprocessorDefense "
            "or WrapperDefense",
        )
    return cls


def check_defense(
    use: str,
    params: dict[str, Any] | None,
    where: str,
    *,
    base_dir: str | Path | None = None,
    expect: str | tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """Check a defense as a suite names it and return its kinds (`defense_kinds`): a built-in's parameters
    without importing it (`bench.defenses.builtin_params`: no torch, no ART), any other defense by building it
    (`create_defense`). Errors as `create_defense`'s."""
    builtin = BUILTIN_CHECKS.get(use) if isinstance(use, str) and use not in DEFENSES else None
    if builtin is None:
        return defense_kinds(create_defense(use, params, where, base_dir=base_dir, expect=expect))
    kinds, check = builtin
    try:
        check(dict(params or {}))
    except BenchError as exc:
        raise type(exc)(where, exc.message) from exc
    _expect(use, kinds, expect, where)
    return kinds


def _expect(use: str, kinds: tuple[str, ...], expect: str | tuple[str, ...] | None, where: str) -> None:
    """Refuse a defense none of whose kinds is among the `expect`ed ones."""
    if expect is not None:
        allowed = (expect,) if isinstance(expect, str) else tuple(expect)
        if not set(kinds) & set(allowed):
            raise BenchError(where, f"{use} is a {kinds[0]} defense; only {' or '.join(allowed)} defenses belong here")


def create_defense(
    use: str,
    params: dict[str, Any] | None,
    where: str,
    *,
    base_dir: str | Path | None = None,
    name: str | None = None,
    expect: str | tuple[str, ...] | None = None,
) -> Any:
    """A configured defense instance, its `name` set to `name` (default: `where`).

    `use`: built-in name, `module.sub:Class` or `path/file.py:Class` (relative to `base_dir`).
    `params`: keyword arguments (or the class's `from_params(params)`).
    `expect`: the kind(s) allowed here, e.g. "training" for a model's defense.
    Every failure raises BenchError / ContractError with `where` naming the defense.
    """
    cls = resolve_defense_class(use, where, base_dir)
    params = dict(params or {})
    try:
        from_params = getattr(cls, "from_params", None)
        obj = from_params(params) if callable(from_params) else cls(**params)
    except BenchError as exc:
        raise type(exc)(where, exc.message) from exc
    except TypeError as exc:
        raise BenchError(where, f"{use}: bad parameters {short(params, 200)}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - user code: report, naming the defense
        raise BenchError(where, f"{use} failed to construct: {type(exc).__name__}: {exc}") from exc
    try:
        kinds = defense_kinds(obj)
    except ContractError as exc:
        raise ContractError(where, exc.message) from exc
    _expect(use, kinds, expect, where)
    try:
        obj.name = name or where
    except AttributeError as exc:
        raise ContractError(where, f"{use}: cannot set the defense's name attribute ({exc})") from exc
    return obj
