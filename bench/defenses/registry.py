"""Defense registry and loader: built-ins by name, a user's defense by `module:Class` or `file.py:Class`.

`create_defense(use, params, where)` returns a configured defense instance whose `name` is set; every
error is a `BenchError` (or `ContractError`) whose `where` names the defense. A user's defense is
found relative to `base_dir` (the suite file's folder):

- `path/to/file.py:ClassName`: the file is loaded as a module (it need not be on `sys.path`);
- `package.module:ClassName`: imported with `base_dir` first on `sys.path`.

Parameters are passed as keyword arguments, or to the class's `from_params(params)` when it has one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from bench.defenses.base import TrainingDefense, WrapperDefense
from bench.defenses.contract import check_preprocessor_output
from bench.errors import BenchError, ContractError

__all__ = [
    "KINDS",
    "check_preprocessor_output",
    "create_defense",
    "defense_kind",
    "list_defenses",
    "register_defense",
    "resolve_defense_class",
]

KINDS = ("training", "preprocessor", "wrapper")

_REGISTRY: dict[str, type] = {}
# Built-ins, imported on first use (the preprocessors import ART). A value without ":" names a module
# that registers itself on import, or holds one defense class (or several, one with `name` = the key).
_BUILTINS: dict[str, str] = {
    "lipschitz": "bench.defenses.lipschitz:LipschitzRegularisation",
    "blur": "bench.defenses.blur:BlurAugmentation",
    "jpeg": "bench.defenses.jpeg:JpegDefense",
    "dip": "bench.defenses.dip_preprocessor:DIPPreprocessor",
}


def register_defense(name: str, cls: type) -> None:
    """Register a defense class under `name` (overrides a built-in of that name)."""
    _REGISTRY[name] = cls


def list_defenses() -> list[str]:
    """Registered and built-in names (a built-in whose module is absent is left out)."""
    names = set(_REGISTRY)
    for name, target in _BUILTINS.items():
        module = target.partition(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.add(name)
    return sorted(names)


def defense_kind(obj: object) -> str:
    """The kind of a defense instance (or class): "training", "preprocessor" or "wrapper"; else ContractError.

    Any ART `PreprocessorPyTorch` counts as a preprocessor, so ART's own defences can be named too.
    """
    cls = obj if inspect.isclass(obj) else type(obj)
    if issubclass(cls, TrainingDefense):
        return "training"
    if issubclass(cls, WrapperDefense):
        return "wrapper"
    art_pre = sys.modules.get("art.defences.preprocessor.preprocessor")
    if art_pre is not None and issubclass(cls, art_pre.PreprocessorPyTorch):
        return "preprocessor"
    name = getattr(obj, "name", None) if not inspect.isclass(obj) else None
    raise ContractError(
        str(name or cls.__name__),
        f"{cls.__module__}.{cls.__qualname__} is not a defense: subclass bench.defenses.base."
        "TrainingDefense, PreprocessorDefense or WrapperDefense",
    )


def _is_defense_class(obj: object) -> bool:
    if not inspect.isclass(obj):
        return False
    try:
        defense_kind(obj)
    except ContractError:
        return False
    return True


def _builtin_class(name: str, where: str) -> type | None:
    if name in _REGISTRY:
        return _REGISTRY[name]
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
    if name in _REGISTRY:  # the module registered itself
        return _REGISTRY[name]
    found = [v for v in vars(module).values() if _is_defense_class(v) and v.__module__ == module_name]
    named = [v for v in found if getattr(v, "name", None) == name]
    if len(named) == 1 or len(found) == 1:
        return (named or found)[0]
    raise BenchError(where, f"module {module_name} defines no single defense class for {name!r}")


_FILE_MODULES: dict[tuple[str, int], Any] = {}


def _load_file(path: Path, where: str) -> Any:
    """Load a Python file as a module (cached by path and modification time)."""
    if not path.is_file():
        raise BenchError(where, f"defense file {path} does not exist")
    key = (str(path), path.stat().st_mtime_ns)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"bench_user_defense_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise BenchError(where, f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise BenchError(where, f"syntax error in {path}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, naming the defense
        sys.modules.pop(mod_name, None)
        raise BenchError(where, f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    _FILE_MODULES[key] = module
    return module


def _import_module(module_name: str, base_dir: Path | None, where: str) -> Any:
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            searched = f"{base_dir} and sys.path" if base_dir else "sys.path"
            raise BenchError(where, f"no module named {module_name!r} (searched {searched})") from exc
        raise BenchError(where, f"importing {module_name} failed: {exc}") from exc
    except SyntaxError as exc:
        raise BenchError(where, f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:  # noqa: BLE001
        raise BenchError(where, f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))


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
    target, _, cls_name = use.rpartition(":")
    if not cls_name.isidentifier() or not target:
        raise BenchError(where, f"{use!r}: expected 'file.py:ClassName' or 'module:ClassName'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        module = _load_file(path if path.is_absolute() else (base / path).resolve(), where)
        origin = str(path)
    else:
        module = _import_module(target, base if base_dir is not None else None, where)
        origin = f"module {target}"
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
        from bench.suite.validate import short

        raise BenchError(where, f"{use}: bad parameters {short(params, 200)}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - user code: report, naming the defense
        raise BenchError(where, f"{use} failed to construct: {type(exc).__name__}: {exc}") from exc
    try:
        kind = defense_kind(obj)
    except ContractError as exc:
        raise ContractError(where, exc.message) from exc
    if expect is not None:
        allowed = (expect,) if isinstance(expect, str) else tuple(expect)
        if kind not in allowed:
            raise BenchError(where, f"{use} is a {kind} defense; only {' or '.join(allowed)} defenses belong here")
    try:
        obj.name = name or where
    except AttributeError as exc:
        raise ContractError(where, f"{use}: cannot set the defense's name attribute ({exc})") from exc
    return obj
