"""A user's attack, loaded from `package.module:Name` or `path/to/file.py:Name` (see docs/adding-an-attack.md).

The contract:

- a function `fn(detector, x, y, params) -> x_adv`, or
- a class, instantiated once per batch as `Cls(params)` and called as `attack(detector, x, y) -> x_adv`,

where `detector` is the `bench.models.Detector` (takes [0, 1] images, returns 2 logits, in eval mode),
`x` float32 N x 3 x H x W in [0, 1] and `y` int64 labels (both on the detector's device; the attack
gets its own copy), and `params` the validated parameter model of the attack it implements. `x_adv` must
be a torch tensor or numpy array of x's shape, floating point, finite and within [0, 1]. Anything else is
a `ContractError` naming the attack.

A class may implement a registered attack (then `attack:` in the suite names that attack), or declare an
attack of its own with the class attributes `name`, `title`, `family` ("single-step", "iterative" or
"minimum-norm"), `norm` ("linf" or "l2"), `budget` (the parameter bounding the perturbation, or None),
`deterministic`, and `Params` (a subclass of `bench.attacks.params.AttackParams`), and optionally `iterations`
(the integer parameter holding its number of iterations, which the not-converged check multiplies) and `margin`
(the parameter holding a required logit margin). Checks and cross-checks then treat it by those declarations,
like a built-in attack.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.attacks.params import AttackParams
from bench.attacks.registry import AttackSpec, Backend, declare_attack, get_attack
from bench.errors import BenchError, ContractError
from bench.models.detector import Detector
from bench.plugins.image_contract import check_images
from bench.plugins.loader import is_plugin_spec, load_object

DECLARATIONS = ("name", "title", "family", "norm", "budget", "deterministic", "Params")


def is_user_spec(spec: str) -> bool:
    """Whether an implementation name looks like `module:Name` or `file.py:Name` (not a backend name)."""
    return is_plugin_spec(spec)


def declares_attack(obj: Any) -> bool:
    """Whether a user attack class declares an attack of its own (it has a `Params` model and a `family`)."""
    return inspect.isclass(obj) and hasattr(obj, "Params") and hasattr(obj, "family")


def declare_user_attack(obj: Any, where: str) -> AttackSpec:
    """Declare the attack a user class describes (see the module doc); errors name `where`."""
    missing = [d for d in DECLARATIONS if not hasattr(obj, d)]
    if missing:
        raise ContractError(where, f"{obj.__name__} declares an attack but lacks {', '.join(missing)}")
    params = obj.Params
    if not (inspect.isclass(params) and issubclass(params, AttackParams)):
        raise ContractError(where, f"{obj.__name__}.Params must subclass bench.attacks.params.AttackParams")
    return declare_attack(params, name=str(obj.name), title=str(obj.title), family=str(obj.family),
                          norm=str(obj.norm), budget=obj.budget, deterministic=bool(obj.deterministic),
                          iterations=getattr(obj, "iterations", None), margin=getattr(obj, "margin", None),
                          where=where)


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


def load_user_attack(spec: str, base_dir: Path | str | None = None, where: str | None = None) -> UserAttack:
    """Load `module.path:Name` or `path/to/file.py:Name` (a function or a class)."""
    where = where or spec
    obj = load_object(spec, where, base_dir)
    check_attack_object(obj, where)
    return UserAttack(name=spec, obj=obj)


def register_user_backend(attack: str, spec: str, base_dir: Path | str | None, where: str) -> AttackSpec:
    """Load the user attack `spec` and register it as backend `spec` of `attack` (declaring `attack` first
    when the class declares it); returns the attack's spec."""
    user = load_user_attack(spec, base_dir, where=where)
    if declares_attack(user.obj):
        declared = declare_user_attack(user.obj, where)
        if declared.name != attack:
            raise BenchError(where, f"{spec} declares the attack {declared.name!r}, but the suite names {attack!r}")
    aspec = get_attack(attack, where=where)
    aspec.backends[spec] = Backend(spec, user)
    return aspec


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




def validate_adversarial(out: Any, x: torch.Tensor, where: str) -> torch.Tensor:
    """Check an attack's output against its input (`bench.plugins.image_contract`): type, shape, dtype, finite,
    in [0, 1]. A floating-point numpy array is accepted. Returns a float32 CPU tensor clipped to [0, 1]."""
    if isinstance(out, np.ndarray):
        if not np.issubdtype(out.dtype, np.floating):
            raise ContractError(
                where, f"returned a numpy array of dtype {out.dtype}; expected floating point in [0, 1]"
            )
        out = torch.from_numpy(np.ascontiguousarray(out))
    check_images(where, x, out, "returned")
    return out.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
