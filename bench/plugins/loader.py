"""The one plug-in loader: `path/to/file.py:Name` or `package.module:Name` (models, attacks, defenses).

A plug-in is code: loading one runs its module's top level. A file is loaded as a module of its own
(cached by path and modification time; it need not be on `sys.path`), relative paths from `base_dir`
(the suite file's folder); a module is imported with `base_dir` first on `sys.path`. Every failure is a
`BenchError` naming `where` and the plug-in.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError, ContractError
from bench.results.digests import file_digest

_FILE_MODULES: dict[tuple[str, int], Any] = {}


def is_plugin_spec(spec: object) -> bool:
    """Whether a name looks like `module:Name` or `file.py:Name` (not a registered name)."""
    return isinstance(spec, str) and ":" in spec


def split_spec(spec: str, where: str) -> tuple[str, str]:
    target, sep, attr = spec.strip().rpartition(":")
    if not sep or not target or not all(p.isidentifier() for p in attr.split(".")):
        raise BenchError(where, f"{spec!r}: expected 'file.py:Name' or 'module:Name'")
    return target, attr


def is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def plugin_path(spec: str, base_dir: Path | str | None) -> Path | None:
    """The file a `file.py:Name` spec names (resolved from `base_dir`), or None for a module spec."""
    target = spec.rpartition(":")[0]
    if not is_file_target(target):
        return None
    path = Path(target).expanduser()
    return path if path.is_absolute() else (Path(base_dir or Path.cwd()) / path).resolve()


def check_spec(spec: str, where: str, base_dir: Path | str | None) -> None:
    """A plug-in reference checked without importing it: its form, and for a file that the file exists."""
    split_spec(spec, where)
    path = plugin_path(spec, base_dir)
    if path is not None and not path.is_file():
        raise BenchError(where, f"plug-in file {path} does not exist")


def source_digest(spec: str, base_dir: Path | str | None) -> str | None:
    """What names a plug-in's code in its cells' keys, so that editing it re-keys them: a file's SHA-256 (None
    if it is missing), a module's name; None for a registered name."""
    if not is_plugin_spec(spec):
        return None
    path = plugin_path(spec, base_dir)
    if path is None:
        return spec.rpartition(":")[0]
    return file_digest(path) if path.is_file() else None


def load_module(target: str, where: str, base_dir: Path | str | None = None) -> Any:
    """Import a module by dotted name, or load a `.py` file (relative to `base_dir`) as a module."""
    if is_file_target(target):
        return _load_file(plugin_path(f"{target}:x", base_dir), where)
    return _import(target, Path(base_dir).resolve() if base_dir is not None else None, where)


def load_object(spec: str, where: str, base_dir: Path | str | None = None) -> Any:
    """The object `spec` names (`file.py:Name` or `module:Name`, dotted attributes allowed)."""
    target, attr = split_spec(spec, where)
    module = load_module(target, where, base_dir)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchError(where, f"{target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _load_file(path: Path, where: str) -> Any:
    if not path.is_file():
        raise BenchError(where, f"plug-in file {path} does not exist")
    key = (str(path), path.stat().st_mtime_ns)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"bench_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise BenchError(where, f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except BenchError as exc:
        sys.modules.pop(mod_name, None)
        raise type(exc)(where, f"loading {path}: {exc.message}") from exc
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise ContractError(where, f"SyntaxError in {path}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, naming the plug-in
        sys.modules.pop(mod_name, None)
        raise ContractError(where, f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    _FILE_MODULES[key] = module
    return module


def _import(module_name: str, base_dir: Path | None, where: str) -> Any:
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
        raise ContractError(where, f"SyntaxError in {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, naming the plug-in
        raise ContractError(where, f"importing {module_name} raised {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))
