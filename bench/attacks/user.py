"""A user's attack, loaded from `package.module:Name` or `/path/to/file.py:Name`, and its contract.

The contract (see docs/custom-attack.md):

- a function `fn(detector, x, y, params) -> x_adv`, or
- a class, instantiated once per run as `Cls(params)` and called as `attack(detector, x, y) -> x_adv`,

where `detector` is the `bench.models.Detector` (takes [0, 1] images, returns 2 logits, in eval mode),
`x` float32 N x 3 x H x W in [0, 1] and `y` int64 labels (both on the detector's device; the attack
gets its own copy), and `params` the validated parameter model of the attack it implements (e.g.
`FGSMParams`; attribute access, `params.model_dump()` for a dict). `x_adv` must be a torch tensor or
numpy array of x's shape, floating point, finite and within [0, 1]. Anything else is a
`ContractError` naming the attack.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.attacks.params import AttackParams
from bench.errors import BenchError, ContractError
from bench.models.detector import Detector

RANGE_TOL = 1e-6  # values this far outside [0, 1] are rounding, and are clipped


def is_user_spec(spec: str) -> bool:
    """Whether an implementation name looks like `module:Name` or `file.py:Name` (not a backend name)."""
    return ":" in spec


def _load_module(target: str, spec: str):
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_file():
            raise BenchError(spec, f"attack file {path} does not exist")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"bench_user_attack_{digest}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise BenchError(spec, f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise ContractError(spec, f"importing {path} raised {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise BenchError(spec, f"no module named {target!r} (is it installed or on PYTHONPATH?)") from exc
    except Exception as exc:
        raise ContractError(spec, f"importing {target} raised {type(exc).__name__}: {exc}") from exc


@dataclass
class UserAttack:
    """A loaded user attack; calling it runs the attack and checks its output."""

    name: str
    obj: Any

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.obj)

    def __call__(self, detector: Detector, x: torch.Tensor, y: torch.Tensor, params: AttackParams) -> torch.Tensor:
        detector.eval()
        dev = detector.device
        xs = x.detach().to(dev, torch.float32).clone()
        ys = y.detach().to(dev, torch.int64).clone()
        try:
            if self.is_class:
                out = self.obj(params)(detector, xs, ys)
            else:
                out = self.obj(detector, xs, ys, params)
        except BenchError:
            raise
        except Exception as exc:
            raise ContractError(self.name, f"the attack raised {type(exc).__name__}: {exc}") from exc
        return validate_adversarial(out, x, where=self.name)


def load_user_attack(spec: str) -> UserAttack:
    """Load `module.path:Name` or `/path/to/file.py:Name` (a function or a class)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise BenchError(spec, "expected 'module.path:Name' or '/path/to/file.py:Name'")
    module = _load_module(target, spec)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchError(spec, f"{target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    check_attack_object(obj, spec)
    return UserAttack(name=spec, obj=obj)


def _accepts(fn: Any, n: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(n))
    except (TypeError, ValueError):
        return False
    return True


def check_attack_object(obj: Any, spec: str) -> None:
    """An attack is a Python function `fn(detector, x, y, params)` or a class `Cls(params)(detector, x, y)`.

    Anything else (a built-in like `builtins:print`, a module, an object of another signature) is refused
    before it is ever called: a `ContractError` naming `spec`.
    """
    if inspect.isclass(obj):
        call = getattr(obj, "__call__", None)  # noqa: B004 - the class must define instance calls
        if obj.__module__ == "builtins" or not inspect.isfunction(call):
            raise ContractError(spec, f"class {obj.__qualname__} is not an attack: it needs a Python __call__"
                                "(self, detector, x, y)")
        if not _accepts(obj, 1) or not _accepts(call, 4):
            raise ContractError(spec, f"class {obj.__qualname__} is not an attack: expected Cls(params) and "
                                "__call__(self, detector, x, y)")
        return
    if not inspect.isfunction(obj):
        raise ContractError(spec, f"is a {type(obj).__name__}, not an attack: expected a Python function "
                            "fn(detector, x, y, params) or a class")
    if not _accepts(obj, 4):
        raise ContractError(spec, f"{obj.__qualname__}{inspect.signature(obj)} does not take "
                            "(detector, x, y, params)")


def _rows(mask: torch.Tensor, limit: int = 5) -> str:
    bad = torch.nonzero(mask.flatten(1).any(dim=1)).flatten().tolist()
    shown = ", ".join(str(i) for i in bad[:limit])
    return f"image{'s' if len(bad) > 1 else ''} {shown}{', ...' if len(bad) > limit else ''}"


def validate_adversarial(out: Any, x: torch.Tensor, where: str) -> torch.Tensor:
    """Check an attack's output against its input: type, shape, dtype, finite, in [0, 1].

    Returns it as a float32 CPU tensor clipped to [0, 1]; raises `ContractError(where, ...)` otherwise.
    """
    if isinstance(out, np.ndarray):
        if not np.issubdtype(out.dtype, np.floating):
            raise ContractError(
                where, f"returned a numpy array of dtype {out.dtype}; expected floating point in [0, 1]"
            )
        out = torch.from_numpy(np.ascontiguousarray(out))
    if not isinstance(out, torch.Tensor):
        raise ContractError(where, f"returned {type(out).__name__}; expected a torch.Tensor of shape {tuple(x.shape)}")
    if tuple(out.shape) != tuple(x.shape):
        raise ContractError(where, f"returned shape {tuple(out.shape)}; the input had shape {tuple(x.shape)}")
    if not out.is_floating_point():
        raise ContractError(where, f"returned dtype {out.dtype}; expected floating point (float32) in [0, 1]")
    out = out.detach().to("cpu", torch.float32)
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        raise ContractError(
            where, f"returned {int((~finite).sum())} non-finite values (NaN or inf) in {_rows(~finite)}"
        )
    outside = (out < -RANGE_TOL) | (out > 1.0 + RANGE_TOL)
    if bool(outside.any()):
        raise ContractError(
            where,
            f"returned values outside [0, 1] (min {float(out.min()):.4g}, max {float(out.max()):.4g}) "
            f"in {_rows(outside)}",
        )
    return out.clamp(0.0, 1.0)
