"""The attack registry: each attack is declared once (its parameters, family, threat norm, budget, determinism,
margin parameter and, for a control, what it controls for) and implemented by one or more registered backends, all
called the same way; each backend declares what it supports (EOT) and what it does with the parameters (`Backend`).

Checks, cross-checks and the leaderboard read these declarations, never attack or backend names.
`create_attack(name, backend, **params)` is the factory (an attack object holding its hyperparameters);
`run_attack(name, backend, detector, x, y, params)` returns adversarial images (float32 CPU, [0, 1]).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from bench.errors import BenchError, validation_error
from bench.plugins.registry import Registry
from bench.settings import configure_art

if TYPE_CHECKING:  # annotations only: the parameter models import this module to declare themselves
    import torch

    from bench.attacks.params import AttackParams
    from bench.models.detector import Detector

AttackFn = Callable[["Detector", "torch.Tensor", "torch.Tensor", "AttackParams"], "torch.Tensor"]
Family = Literal["single-step", "iterative", "minimum-norm", "control"]
FAMILIES: tuple[str, ...] = ("single-step", "iterative", "minimum-norm", "control")
NORMS: tuple[str, ...] = ("linf", "l2")
# What a control (family "control") holds beside the clean image: nothing but the storage, or random noise at a size.
STORAGE_ONLY, RANDOM_NOISE = "storage-only", "random-noise"
CONTROL_KINDS: tuple[str, ...] = (STORAGE_ONLY, RANDOM_NOISE)


# bench's own backends: attack -> backend -> the module whose import registers it. They are imported when first
# used, so listing or validating attacks needs neither torch nor the toolkits (tests/test_cli_startup.py checks
# this table against what the modules register).
BUILTIN_BACKENDS: dict[str, dict[str, str]] = {
    "fgsm": {"native": "bench.attacks.native", "art": "bench.attacks.toolkits", "foolbox": "bench.attacks.toolkits"},
    "cw_l2": {"native": "bench.attacks.native", "art": "bench.attacks.toolkits",
              "foolbox": "bench.attacks.toolkits"},
    "pgd": {"native": "bench.attacks.native", "art": "bench.attacks.toolkits", "foolbox": "bench.attacks.toolkits"},
    "apgd": {"native": "bench.attacks.apgd", "art": "bench.attacks.toolkits"},
    "square": {"native": "bench.attacks.square", "art": "bench.attacks.toolkits"},
    "fmn": {"native": "bench.attacks.min_norm", "foolbox": "bench.attacks.toolkits"},
    "ddn": {"native": "bench.attacks.min_norm", "foolbox": "bench.attacks.toolkits"},
    "ensemble": {"native": "bench.attacks.ensemble"},
    "storage": {"native": "bench.attacks.controls"},
    "noise": {"native": "bench.attacks.controls"},
    "noise_l2": {"native": "bench.attacks.controls"},
}


@dataclass(frozen=True)
class Backend:
    """One implementation of an attack and what it declares about itself.

    - `eot`: it averages gradients over `eot` passes through a randomized defense (`bench.attacks.eot`); an
      attack point with `eot > 1` runs only on a backend that declares it;
    - `unused`: the parameters it ignores (name -> why, printed after "not used by <backend>"), e.g. a
      toolkit's CW-L2 has no upper end of the c search (`c_max`);
    - `behaviour`: the parameters it uses differently from the native backend (name -> what it does);
    - `imports`: what its first call imports (a toolkit), imported before it is timed (`warm_backend`).
    """

    name: str
    fn: AttackFn
    eot: bool = False
    unused: Mapping[str, str] = field(default_factory=dict)
    behaviour: Mapping[str, str] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    def __call__(self, detector: Detector, x: torch.Tensor, y: torch.Tensor, params: AttackParams) -> torch.Tensor:
        return self.fn(detector, x, y, params)

    def effective_params(self, params: dict[str, Any]) -> dict[str, str]:
        """Each parameter as this backend ran it: its value, or its value marked as not used (with why) or as
        used differently (how), e.g. `c_max=100.0 (not used by foolbox: ...)`. The craft cell stores it with its
        metrics, so the leaderboard prints what the backend used from the store alone."""
        out = {}
        for k, v in params.items():
            if k in self.unused:
                why = f": {self.unused[k]}" if self.unused[k] else ""
                out[k] = f"{v} (not used by {self.name}{why})"
            elif k in self.behaviour:
                out[k] = f"{v} ({self.name}: {self.behaviour[k]})"
            else:
                out[k] = str(v)
        return out


class Backends(MutableMapping):
    """An attack's backends, name -> `Backend`: the registered ones, and bench's own (`BUILTIN_BACKENDS`) whose
    module is imported the first time one of them is looked up."""

    def __init__(self, attack: str) -> None:
        self.attack = attack
        self._fns: dict[str, Backend] = {}

    def _lazy(self) -> dict[str, str]:
        return BUILTIN_BACKENDS.get(self.attack, {})

    def __getitem__(self, name: str) -> Backend:
        if name not in self._fns and name in self._lazy():
            importlib.import_module(self._lazy()[name])  # registers its backends (register_backend)
        return self._fns[name]

    def __setitem__(self, name: str, backend: Backend) -> None:
        self._fns[name] = backend

    def __delitem__(self, name: str) -> None:
        del self._fns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fns or name in self._lazy()

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._lazy(), *self._fns]))

    def __len__(self) -> int:
        return len(set(self._lazy()) | set(self._fns))


@dataclass
class AttackSpec:
    """An attack: what it is (declarations) and who implements it (backends).

    - `family`: "single-step" (one gradient step), "iterative" (a budgeted iterative attack) or
      "minimum-norm" (searches the smallest perturbation that succeeds) or "control" (no adversarial
      information: storage only, random noise; `bench.attacks.controls`), never ranked;
    - `norm`: the threat norm, "linf" or "l2" (a parameter named `norm` overrides it per point);
    - `budget`: the parameter bounding the perturbation (e.g. "eps"); None for minimum-norm attacks;
    - `deterministic`: whether the attack is a fixed function of its inputs and parameters, so that two
      correct implementations must agree pixel by pixel (a parameter named `random_start` set to true
      makes a point random); an optimisation whose search path each implementation chooses (CW-L2's
      c search and early stopping) is not;
    - `iterations`: the integer parameter that holds the attack's number of iterations (PGD's `steps`, CW-L2's
      `max_iterations`, Square's `queries`), or None: the not-converged check reruns an attack with a multiple
      of it (docs/checks/not-converged.md) and never guesses it from parameter names;
    - `margin`: the parameter that holds a required logit margin (CW-L2's `confidence`, kappa), or None: checks
      and cross-checks explain an attack that returns images unperturbed where no iterate reached it;
    - `control`: for a control, what it holds beside the clean image (`STORAGE_ONLY` or `RANDOM_NOISE`); a
      random-noise control's parameter model names its size parameter (`size_param`).
    """

    name: str
    title: str
    params: type[AttackParams]
    family: str
    norm: str
    budget: str | None
    deterministic: bool
    iterations: str | None = None
    margin: str | None = None
    control: str | None = None
    backends: Backends = field(init=False)

    def __post_init__(self) -> None:
        self.backends = Backends(self.name)

    def norm_of(self, params: AttackParams | dict[str, Any]) -> str:
        value = _get(params, "norm")
        return str(value) if value is not None else self.norm

    def family_of(self, params: AttackParams | dict[str, Any]) -> str:
        """The family at this point: the declared one, unless the parameter model says otherwise with a
        `family_at()` method (an ensemble is as strong as its strongest member)."""
        at = getattr(params, "family_at", None)
        return str(at()) if callable(at) else self.family

    def budget_of(self, params: AttackParams | dict[str, Any]) -> float | None:
        return None if self.budget is None else float(_get(params, self.budget))

    def deterministic_for(self, params: AttackParams | dict[str, Any]) -> bool:
        return self.deterministic and not _get(params, "random_start")

    def margin_of(self, params: AttackParams | dict[str, Any]) -> float | None:
        """The required logit margin at this point (None: the attack declares no margin parameter)."""
        value = None if self.margin is None else _get(params, self.margin)
        return None if value is None else float(value)

    def iterations_of(self, params: AttackParams | dict[str, Any]) -> int | None:
        """The number of iterations at this point (None: the attack declares no iteration parameter)."""
        return None if self.iterations is None else int(_get(params, self.iterations))

    def declaration(self) -> dict[str, Any]:
        """The declarations as plain data (stored with every plan, read by checks and reports)."""
        return {"attack": self.name, "title": self.title, "family": self.family, "norm": self.norm,
                "budget": self.budget, "deterministic": self.deterministic, "iterations": self.iterations,
                "margin": self.margin, "control": self.control}


def _get(params: AttackParams | dict[str, Any], name: str) -> Any:
    return params.get(name) if isinstance(params, dict) else getattr(params, name, None)


ATTACKS: Registry[AttackSpec] = Registry("attack")


def declare_attack(params: type[AttackParams], *, name: str, title: str, family: str, norm: str,
                   budget: str | None, deterministic: bool, iterations: str | None = None,
                   margin: str | None = None, control: str | None = None, where: str = "attack") -> AttackSpec:
    """Declare an attack (or return the existing declaration of that name, which must match)."""
    if family not in FAMILIES:
        raise BenchError(f"{where}.family", f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if norm not in NORMS:
        raise BenchError(f"{where}.norm", f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    if budget is not None and budget not in params.model_fields:
        raise BenchError(f"{where}.budget", f"{budget!r} is not a parameter of {params.__name__}")
    if family == "minimum-norm" and budget is not None:
        raise BenchError(f"{where}.budget", "a minimum-norm attack has no budget parameter (budget: None)")
    if iterations is not None and not _is_integer_field(params, iterations):
        raise BenchError(f"{where}.iterations", f"{iterations!r} is not an integer parameter of {params.__name__}")
    if margin is not None and margin not in params.model_fields:
        raise BenchError(f"{where}.margin", f"{margin!r} is not a parameter of {params.__name__}")
    if (family == "control") != (control is not None) or (control is not None and control not in CONTROL_KINDS):
        raise BenchError(f"{where}.control", f"a control declares what it controls for, one of "
                                             f"{', '.join(CONTROL_KINDS)}, and only a control does (got {control!r})")
    spec = AttackSpec(name, title, params, family, norm, budget, deterministic, iterations, margin, control)
    old = ATTACKS.find(name)
    if old is not None:
        if old.declaration() != spec.declaration():
            raise BenchError(where, f"attack {name!r} is already declared differently: {old.declaration()}")
        old.params = params  # the same attack from a reloaded (edited) file: its latest parameter model
        return old
    return ATTACKS.register(name, spec)


def _is_integer_field(params: type[AttackParams], name: str) -> bool:
    f = params.model_fields.get(name)
    return f is not None and f.annotation is int


def register_attack(*, name: str, title: str, family: str, norm: str, budget: str | None, deterministic: bool,
                    iterations: str | None = None, margin: str | None = None,
                    control: str | None = None) -> Callable[[type[AttackParams]], type[AttackParams]]:
    """Class decorator on an attack's parameter model: declares the attack."""

    def deco(params: type[AttackParams]) -> type[AttackParams]:
        declare_attack(params, name=name, title=title, family=family, norm=norm, budget=budget,
                       deterministic=deterministic, iterations=iterations, margin=margin, control=control)
        return params

    return deco


def warm_backend(attack: str, backend: str) -> None:
    """Import the toolkit behind `backend` of `attack` (its declared `imports`; none for native and user backends)
    before the attack is timed: importing ART takes seconds, once per process, and is not the attack's cost."""
    configure_art()  # ART writes its config where ART_DATA_PATH points: set before its first import
    backends = get_attack(attack).backends
    for module in backends[backend].imports if backend in backends else ():
        importlib.import_module(module)


def register_backend(attack: str, backend: str, *, eot: bool = False, unused: Mapping[str, str] | None = None,
                     behaviour: Mapping[str, str] | None = None,
                     imports: tuple[str, ...] = ()) -> Callable[[AttackFn], AttackFn]:
    """Function decorator: `fn(detector, x, y, params) -> x_adv` implements `attack` as `backend`, with what the
    backend declares about itself (`Backend`)."""

    def deco(fn: AttackFn) -> AttackFn:
        if attack not in ATTACKS:
            raise KeyError(f"declare the attack {attack!r} before its backends")
        spec = ATTACKS.get(attack, "backend")
        for k in [*(unused or {}), *(behaviour or {})]:
            if k not in spec.params.model_fields:
                raise KeyError(f"backend {backend!r} of {attack!r} declares {k!r}, not a parameter of the attack")
        spec.backends[backend] = Backend(backend, fn, eot, dict(unused or {}), dict(behaviour or {}), imports)
        return fn

    return deco


def effective_params(attack: str, backend: str, params: dict[str, Any]) -> dict[str, str]:
    """Each parameter as `backend` runs it (`Backend.effective_params`); a backend not registered in this process
    (a user's file not loaded) prints the values as given."""
    spec = get_attack(attack)
    if backend in spec.backends:
        return spec.backends[backend].effective_params(params)
    return {k: str(v) for k, v in params.items()}


def noise_control(norm: str) -> AttackSpec:
    """The registered random-noise control in `norm` (the control of an attack's budget in that norm)."""
    found = [s for s in ATTACKS.values() if s.control == RANDOM_NOISE and s.norm == norm]
    if len(found) != 1:
        raise KeyError(f"{len(found)} random-noise controls declared in {norm}; expected one")
    return found[0]


def controls_of(kind: str) -> list[AttackSpec]:
    """The registered controls of one kind (`CONTROL_KINDS`), in declaration order."""
    return [s for s in ATTACKS.values() if s.control == kind]


def declared(attack: str, what: str) -> Any:
    """What attack `attack` declares (the `AttackSpec` field `what`, e.g. "control", "iterations"), None for an
    attack not declared in this process (a user's file not loaded)."""
    spec = ATTACKS.find(attack)
    return None if spec is None else getattr(spec, what)


def margin_at(attack: str, params: dict[str, Any]) -> tuple[str, float] | None:
    """(the attack's title, its required logit margin at `params`) for a stored point, or None: an attack that
    declares no margin parameter, or one not declared in this process (a user's file not loaded)."""
    spec = ATTACKS.find(attack)
    margin = None if spec is None else spec.margin_of(params)
    return None if spec is None or margin is None else (spec.title, margin)


def control_size(attack: str, params: dict[str, Any]) -> float | None:
    """A random-noise control's given size (its `size_param`: an L-inf eps, an L2 norm), or None: another kind of
    control, or a noise control sized later by an attack's examples."""
    spec = ATTACKS.find(attack)
    if spec is None or spec.control != RANDOM_NOISE:
        return None
    value = params.get(spec.params.size_param)
    return None if value is None else float(value)


def get_attack(name: str, where: str = "attack") -> AttackSpec:
    return ATTACKS.get(name, where)


def list_attacks() -> list[AttackSpec]:
    return ATTACKS.values()


def run_attack(
    name: str, backend: str, detector: Detector, x: torch.Tensor, y: torch.Tensor, params: AttackParams
) -> torch.Tensor:
    spec = get_attack(name)
    if backend not in spec.backends:
        raise BenchError(
            "backend", f"attack {name!r} has no backend {backend!r}; available: {', '.join(sorted(spec.backends))}"
        )
    impl = spec.backends[backend]
    if not impl.eot and int(getattr(params, "eot", 1)) > 1:
        able = [b for b in spec.backends if spec.backends[b].eot]
        raise BenchError(f"{name}.eot", f"eot > 1 (expectation over transformation) needs a backend that averages "
                                        f"gradients over passes ({', '.join(able) or 'none of this attack'}), not "
                                        f"{backend!r} (it takes one gradient per step)")
    detector.eval()
    return impl(detector, x, y, params)


@dataclass(frozen=True)
class Attack:
    """An attack object (as in Foolbox 3): which attack, which backend, and its hyperparameters only.
    Called as `attack(detector, x, y) -> x_adv`, like every backend."""

    spec: AttackSpec
    backend: str
    params: AttackParams

    def __call__(self, detector: Detector, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return run_attack(self.spec.name, self.backend, detector, x, y, self.params)


def create_attack(name: str, backend: str = "native", **params: Any) -> Attack:
    """The one factory of attacks: `create_attack("fgsm", "art", eps=0.02)`; parameters are validated."""
    spec = get_attack(name)
    if backend not in spec.backends:
        raise BenchError("backend", f"attack {name!r} has no backend {backend!r}; available: "
                                    f"{', '.join(sorted(spec.backends))}")
    try:
        return Attack(spec, backend, spec.params(**params))
    except ValidationError as exc:
        raise validation_error(exc, name) from None
