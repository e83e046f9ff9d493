"""Reading a suite file: YAML (safe_load), profile overrides, pydantic validation, cross-references.

Every error is a `BenchError` naming the file and the field, e.g.
`suites/x.yaml: attacks.cw.confidence: must be >= 0`.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.attacks.params import AttackParams
from bench.attacks.registry import get_attack
from bench.defenses.registry import check_defense
from bench.errors import BenchError, format_validation_error, short
from bench.models.registry import list_models
from bench.plugins import check_spec, is_plugin_spec, source_digest
from bench.sections import Section, builtin_sections, load_plugin_section
from bench.suite.replicas import expand_replicas
from bench.suite.schema import AttackConfig, ModelConfig, Suite, suite_model
from bench.suite.validate import check_loaded, read_suite_file


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


def deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge key by key; anything else in `override` replaces the base value."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(path: Path) -> dict:
    """The suite file's top-level mapping, after the file-level checks of `bench.suite.validate`."""
    return read_suite_file(path)


def load_suite(
    path: Path | str,
    profile: str | None = None,
    extra: dict | None = None,
    *,
    load_plugins: bool = True,
    all_profiles: bool = True,
    other_profiles_plugins: bool = False,
) -> LoadedSuite:
    """Read, apply `profile` and `extra` overrides, validate and expand models and attack grids.

    With `all_profiles`, every other profile of the suite is validated too (an unselected profile's error is
    found now, not when someone selects it). Without `load_plugins`, user plug-ins (`file.py:Class`,
    `module:Class`) are checked by name only: their code is not imported; the other profiles' plug-ins are
    imported only with `other_profiles_plugins` too (`bench validate --load-plugins`), never by a run.
    """
    path = Path(path)
    raw = read_yaml(path)
    profiles = raw.get("profiles") or {}
    if profile and profile not in profiles:
        known = ", ".join(str(p) for p in profiles)[:500] or "none"
        raise BenchError(f"{path}: --profile", f"unknown profile {short(profile)}; this suite has: {known}")
    loaded = _load_one(path, raw, profile, extra, load_plugins)
    if all_profiles:
        for other in profiles:
            if other != profile:
                _load_one(path, raw, other, extra, load_plugins and other_profiles_plugins)
    return loaded


def _load_one(path: Path, raw: dict, profile: str | None, extra: dict | None, load_plugins: bool) -> LoadedSuite:
    overrides: dict[str, Any] = {}
    if profile:
        overrides = deep_merge(overrides, raw["profiles"][profile] or {})
    if extra:
        overrides = deep_merge(overrides, extra)
    merged = deep_merge(raw, overrides)
    shown = f"{path} (profile {profile})" if profile else str(path)
    secs = suite_sections(merged.get("sections"), path.parent, shown, load_plugins)
    unloaded = not load_plugins and bool(merged.get("sections"))
    try:
        suite = suite_model(secs, open_fields=unloaded).model_validate(merged)
    except ValidationError as exc:
        raise BenchError(shown, format_validation_error(exc)) from None
    loaded = LoadedSuite(path=path, suite=suite, profile=profile, overrides=overrides, sections=secs)
    try:
        _resolve(loaded, load_plugins)
        check_loaded(loaded)
    except BenchError as exc:
        raise BenchError(f"{shown}: {exc.where}" if exc.where else shown, exc.message) from None
    return loaded


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


def _grid(items: dict[str, Any], where: str) -> list[dict[str, Any]]:
    axes = {}
    for k, v in items.items():
        if isinstance(v, list):
            if not v:
                raise BenchError(f"{where}.{k}", "empty grid: give at least one value")
            axes[k] = v
    fixed = {k: v for k, v in items.items() if k not in axes}
    return [dict(fixed, **dict(zip(axes, combo, strict=True))) for combo in itertools.product(*axes.values())]


def _resolve(ls: LoadedSuite, load_plugins: bool = True) -> None:
    s = ls.suite
    known_arch = set(list_models())

    for name, m in s.models.items():
        where = f"models.{name}"
        if m.arch not in known_arch:
            raise BenchError(f"{where}.arch", f"unknown model {short(m.arch)}; known: {', '.join(sorted(known_arch))}")
        if m.checkpoint and (ls.base_dir / m.checkpoint).is_dir():
            raise BenchError(f"{where}.checkpoint", f"{ls.base_dir / m.checkpoint} is a folder, not a checkpoint file")
        if m.checkpoint and not (ls.base_dir / m.checkpoint).is_file():
            raise BenchError(f"{where}.checkpoint", f"file {ls.base_dir / m.checkpoint} does not exist")
        if m.init_from and m.init_from not in s.models:
            raise BenchError(f"{where}.init_from", f"unknown model {short(m.init_from)}")
        label = m.label or name
        if not m.defense:
            ls.models[name] = ResolvedModel(name, m, None, label, name)
            continue
        (dname, dparams), = m.defense.items()
        points = _grid(dparams or {}, f"{where}.defense.{dname}")
        varying = [k for k, v in (dparams or {}).items() if isinstance(v, list)]
        for p in points:
            if load_plugins or not is_plugin_spec(dname):
                kinds = check_defense(dname, p, where=f"{where}.defense.{dname}", base_dir=ls.base_dir)
            else:
                check_spec(dname, f"{where}.defense", ls.base_dir)
                kinds = None
            if kinds is not None and "training" not in kinds:
                raise BenchError(f"{where}.defense.{dname}", "models take training-time defenses only; "
                                 "list preprocessors and wrappers under `defenses:`")
            suffix = "".join(f"-{k}{p[k]}" for k in varying)
            mname = f"{name}-{dname}{suffix}" if varying else name
            mlabel = f"{label} ({dname}" + "".join(f" {k}={p[k]}" for k in varying) + ")" if varying else label
            ls.models[mname] = ResolvedModel(mname, m, (dname, p), mlabel, name)
    for name, d in s.defenses.items():
        for target in d.applies_to:
            if target not in ls.models:
                raise BenchError(f"defenses.{name}.applies_to", f"unknown model {short(target)}")
        if not load_plugins and is_plugin_spec(d.use):
            check_spec(d.use, f"defenses.{name}.use", ls.base_dir)
            continue
        if check_defense(d.use, d.params, where=f"defenses.{name}", base_dir=ls.base_dir) == ("training",):
            raise BenchError(f"defenses.{name}", "training-time defenses belong under a model's `defense:`")
    for key, a in s.attacks.items():
        _resolve_attack(ls, key, a, load_plugins)
    for sec in ls.sections:
        if sec.check is not None:
            sec.check(ls, load_plugins)
    for i, (src, dst) in enumerate(s.threat_models.transfer):
        for which, m in (("source", src), ("target", dst)):
            if m not in ls.models:
                raise BenchError(f"threat_models.transfer[{i}]", f"unknown {which} model {short(m)}")
    _check_attack_restrictions(ls)
    expand_replicas(ls)  # after every reference is checked against the suite's own model names


def _check_attack_restrictions(ls: LoadedSuite) -> None:
    """A model's `attacks` names attack entries of the suite; an attack entry's `models` names models (as the suite
    names them, or a grid's expanded names)."""
    s = ls.suite
    for name, m in s.models.items():
        for key in m.attacks or []:
            if key not in s.attacks:
                raise BenchError(f"models.{name}.attacks", f"unknown attack entry {short(key)}; the suite's: "
                                 f"{', '.join(s.attacks) or 'none'}")
    known = set(s.models) | set(ls.models)
    for key, a in s.attacks.items():
        for name in a.models or []:
            if name not in known:
                raise BenchError(f"attacks.{key}.models", f"unknown model {short(name)}")


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


def _resolve_attack(ls: LoadedSuite, key: str, a: AttackConfig, load_plugins: bool = True) -> None:
    where = f"attacks.{key}"
    src = None
    if is_plugin_spec(a.backend) and not load_plugins:  # checked by name only: its code is not imported
        check_spec(a.backend, f"{where}.backend", ls.base_dir)
        return
    if is_plugin_spec(a.backend):
        from bench.attacks.user import register_user_backend  # lazy: the user's code, and torch

        spec = register_user_backend(a.attack, a.backend, ls.base_dir, where=f"{where}.backend")
        src = source_digest(a.backend, ls.base_dir)
    else:
        spec = get_attack(a.attack, where=f"{where}.attack")
    if a.backend not in spec.backends:
        raise BenchError(f"{where}.backend",
                         f"attack {a.attack!r} has no backend {a.backend!r}; available: {', '.join(spec.backends)}")
    items = a.param_items()
    varying = tuple(k for k, v in items.items() if isinstance(v, list))
    table = a.table or {}
    for k in table:
        if k not in items:
            raise BenchError(f"{where}.table.{k}", "names no parameter of this attack")
    points = _grid(items, where)
    for i, p in enumerate(points):
        try:
            params = spec.params.model_validate(p)
        except ValidationError as exc:
            raise BenchError("", format_validation_error(exc, (*where.split("."),))) from None
        in_table = all(p.get(k) == v for k, v in table.items()) if table else i == 0
        decl = spec.declaration()
        aware = ls.suite.evaluation.storage_aware if a.storage_aware is None else a.storage_aware
        ls.attacks.append(AttackPoint(key, a.attack, a.backend, params.model_dump(), in_table, varying,
                                      decl["title"], spec.family_of(params), spec.norm_of(params), decl["budget"],
                                      spec.deterministic_for(params), src, storage_aware=aware))
