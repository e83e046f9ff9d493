"""A loaded suite as data: the resolved models, the attack points, the sections, and what the planner and the
checks ask of them. `bench.suite.load` builds it from a file; `LoadedSuite.from_dict` from a stored run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.attacks.params import AttackParams
from bench.attacks.registry import get_attack
from bench.errors import BenchError, short
from bench.plugins.loader import check_spec
from bench.sections import Section, builtin_sections, load_plugin_section
from bench.suite.schema import ModelConfig, Suite, suite_model


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one grid point, with one backend, as plain data: the suite's entry name (`key`),
    the validated parameters (every field, defaults filled in) and the attack's declarations."""

    key: str
    attack: str
    backend: str
    params: dict[str, Any] = field(hash=False)
    in_table: bool
    varying: tuple[str, ...] = ()
    title: str = ""
    family: str = ""
    norm: str = ""
    budget: str | None = None
    deterministic: bool = True
    source_digest: str | None = None  # a user backend's file: editing it invalidates its cells
    role: str = "attack"  # "attack" (the suite's), "control" or "check" (added by the plan: never ranked)
    images: int | None = None  # a check attacks only the first `images` attacked fakes (None: all of them)
    restarts: int = 1  # a check attack's random restarts, each on the images no earlier one broke
    storage_aware: bool = True  # made through the suite's storage (bench.attacks.storage); False: the paper's setting
    reference: str | None = None  # a check's: the craft key of the suite attack it is compared with, image by image

    @property
    def label(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.params.items() if k in self.varying)
        return f"{self.key}[{vals}]" if vals else self.key

    @property
    def budget_value(self) -> float | None:
        return None if self.budget is None else float(self.params[self.budget])

    def params_model(self) -> AttackParams:
        """The parameters as the attack's validated model (what a backend receives)."""
        return get_attack(self.attack).params.model_validate(self.params)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "varying": list(self.varying)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttackPoint:
        # a plan stored before attacks were made through the storage has no flag: its attacks ignored storage
        return cls(**{**d, "varying": tuple(d.get("varying", ())), "storage_aware": d.get("storage_aware", False)})


@dataclass(frozen=True)
class ResolvedModel:
    """A model of the suite after grid expansion."""

    name: str
    config: ModelConfig
    training_defense: tuple[str, dict[str, Any]] | None
    label: str
    base: str
    replica: int = 0  # training replica (bench.suite.replicas): trained with seed `suite.seed + replica`
    group: str | None = None  # replica 0's name, which every replica of the model shares; None: this model

    @property
    def group_name(self) -> str:
        """The model this one is a replica of (its own name for replica 0)."""
        return self.group or self.name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.model_dump(mode="json"),
                "training_defense": list(self.training_defense) if self.training_defense else None,
                "label": self.label, "base": self.base, "replica": self.replica, "group": self.group}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResolvedModel:
        td = d["training_defense"]
        return cls(d["name"], ModelConfig.model_validate(d["config"]), (td[0], td[1]) if td else None, d["label"],
                   d["base"], int(d.get("replica", 0)), d.get("group"))


@dataclass
class LoadedSuite:
    path: Path
    suite: Suite
    profile: str | None
    overrides: dict[str, Any]
    models: dict[str, ResolvedModel] = field(default_factory=dict)
    attacks: list[AttackPoint] = field(default_factory=list)
    sections: list[Section] = field(default_factory=builtin_sections)  # the built-in ones and its plug-ins

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def tag(self) -> str:
        return f"{self.suite.name}-{self.profile}" if self.profile else self.suite.name

    def as_dict(self) -> dict[str, Any]:
        """The suite as resolved, as plain data (stored with every run; `from_dict` reads no file)."""
        return {"path": str(self.path), "suite": self.suite.model_dump(mode="json"), "profile": self.profile,
                "overrides": self.overrides, "models": [m.as_dict() for m in self.models.values()],
                "attacks": [a.as_dict() for a in self.attacks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadedSuite:
        path = Path(d["path"])
        secs = suite_sections(d["suite"].get("sections"), path.parent, str(path))
        ls = cls(path, suite_model(secs).model_validate(d["suite"]), d["profile"], d["overrides"], sections=secs)
        ls.models = {m["name"]: ResolvedModel.from_dict(m) for m in d["models"]}
        ls.attacks = [AttackPoint.from_dict(a) for a in d["attacks"]]
        return ls


def suite_sections(specs: Any, base_dir: Path, shown: str, load_plugins: bool = True) -> list[Section]:
    """The built-in sections and the suite's plug-in sections (`sections: [file.py:NAME, ...]`), in the
    leaderboard's order. Without `load_plugins`, a plug-in is checked by name only (its code is not imported)."""
    secs = builtin_sections()
    if specs is None:
        return secs
    if not isinstance(specs, list) or not all(isinstance(x, str) for x in specs):
        raise BenchError(f"{shown}: sections",
                         f"expected a list of 'file.py:NAME' or 'module:NAME', got {short(specs)}")
    for i, spec in enumerate(specs):
        where = f"{shown}: sections[{i}]"
        if load_plugins:
            sec = load_plugin_section(spec, where, base_dir)
            taken = set(Suite.model_fields) | {other.field for other in secs}
            if sec.field is not None and sec.field in taken:
                raise BenchError(where, f"{short(spec)}: the suite already has a field {sec.field!r}")
            secs.append(sec)
        else:
            check_spec(spec, where, base_dir)
    return sorted(secs, key=lambda sec: sec.order)


def runs_against(ls: LoadedSuite, attack_key: str, model: str) -> bool:
    """Whether the suite's attack entry `attack_key` runs against resolved model `model` (and its variants): the
    model's `attacks` and the entry's `models` both allow it (either left out allows everything)."""
    rm = ls.models[model]
    allowed = rm.config.attacks
    if allowed is not None and attack_key not in allowed:
        return False
    entry = ls.suite.attacks.get(attack_key)
    targets = entry.models if entry is not None else None
    return targets is None or rm.base in targets or rm.group_name in targets
