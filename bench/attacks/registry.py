"""Attack registry: each attack has one parameter model and one or more backends, all called the same way.

`run_attack(name, backend, detector, x, y, params)` returns adversarial images (float32 CPU, [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.attacks import toolkits
from bench.attacks.params import AttackParams, CWL2Params, FGSMParams, PGDParams
from bench.errors import BenchError
from bench.models.detector import Detector

AttackFn = Callable[[Detector, torch.Tensor, torch.Tensor, AttackParams], torch.Tensor]


@dataclass
class AttackSpec:
    """An attack: its display name, its parameter model and its implementations by backend."""

    name: str
    title: str
    params: type[AttackParams]
    backends: dict[str, AttackFn] = field(default_factory=dict)


_ATTACKS: dict[str, AttackSpec] = {}


def register_attack(name: str, title: str, params: type[AttackParams]) -> AttackSpec:
    spec = _ATTACKS.setdefault(name, AttackSpec(name, title, params))
    return spec


def register_backend(attack: str, backend: str, fn: AttackFn) -> None:
    if attack not in _ATTACKS:
        raise KeyError(f"register the attack {attack!r} before its backends")
    _ATTACKS[attack].backends[backend] = fn


def get_attack(name: str, where: str = "attack") -> AttackSpec:
    _load_plugins()
    if name not in _ATTACKS:
        raise BenchError(where, f"unknown attack {name!r}; known: {', '.join(sorted(_ATTACKS))}")
    return _ATTACKS[name]


def list_attacks() -> list[AttackSpec]:
    _load_plugins()
    return [_ATTACKS[k] for k in sorted(_ATTACKS)]


def run_attack(
    name: str, backend: str, detector: Detector, x: torch.Tensor, y: torch.Tensor, params: AttackParams
) -> torch.Tensor:
    spec = get_attack(name)
    if backend not in spec.backends:
        raise BenchError(
            "backend", f"attack {name!r} has no backend {backend!r}; available: {', '.join(sorted(spec.backends))}"
        )
    detector.eval()
    return spec.backends[backend](detector, x, y, params)


_loaded = False


def _load_plugins() -> None:
    """Import modules that register further backends (the native attacks), once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        import bench.attacks.native  # noqa: F401  (registers backend "native")
    except ModuleNotFoundError as exc:  # native attacks are optional until they exist
        if exc.name != "bench.attacks.native":
            raise


register_attack("fgsm", "FGSM", FGSMParams)
register_backend("fgsm", "art", toolkits.art_fgsm)
register_backend("fgsm", "foolbox", toolkits.foolbox_fgsm)
register_attack("cw_l2", "CW-L2", CWL2Params)
register_backend("cw_l2", "art", toolkits.art_cw_l2)
register_backend("cw_l2", "foolbox", toolkits.foolbox_cw_l2)
register_attack("pgd", "PGD", PGDParams)
register_backend("pgd", "art", toolkits.art_pgd)
register_backend("pgd", "foolbox", toolkits.foolbox_pgd)
