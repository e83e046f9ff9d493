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
from bench.errors import BenchError
from bench.models.registry import list_models
from bench.suite.schema import AttackConfig, ModelConfig, Suite
from bench.suite.validate import check_loaded, read_suite_file, short


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one grid point, with one backend."""

    key: str
    attack: str
    backend: str
    params: AttackParams
    in_table: bool

    @property
    def label(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.params.model_dump().items() if k in self.varying)
        return f"{self.key}[{vals}]" if vals else self.key

    varying: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedModel:
    """A model of the suite after grid expansion."""

    name: str
    config: ModelConfig
    training_defense: tuple[str, dict[str, Any]] | None
    label: str
    base: str


@dataclass
class LoadedSuite:
    path: Path
    suite: Suite
    profile: str | None
    overrides: dict[str, Any]
    models: dict[str, ResolvedModel] = field(default_factory=dict)
    attacks: list[AttackPoint] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def tag(self) -> str:
        return f"{self.suite.name}-{self.profile}" if self.profile else self.suite.name


def deep_merge(base: dict, override: dict) -> dict:
    """Mappings merge key by key; anything else in `override` replaces the base value."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "too_short": "must not be empty",
    "too_long": "is too long (at most {max_length})",
    "string_too_long": "is too long (at most {max_length} characters)",
    "float_type": "expected a number, got {input}",
    "int_type": "expected an integer, got {input}",
    "bool_type": "expected true or false, got {input}",
    "string_type": "expected a string, got {input}",
    "dict_type": "expected a mapping, got {input}",
    "list_type": "expected a list, got {input}",
    "finite_number": "must be a finite number, got {input}",
}


def _describe(value: Any) -> str:
    """A value as the suite wrote it, bounded: `true (a boolean)`, `'abc' (a string)`."""
    kinds = {bool: "a boolean", str: "a string", dict: "a mapping", list: "a list", type(None): "null"}
    kind = kinds.get(type(value), type(value).__name__)
    shown = str(value).lower() if isinstance(value, bool) else short(value, 60)
    return f"{shown} ({kind})"


def _format_validation(err: ValidationError, prefix: tuple = ()) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (*prefix, *e["loc"]) if not str(p).startswith("function-"))
        tmpl = _MESSAGES.get(e["type"])
        ctx = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in (e.get("ctx") or {}).items()}
        ctx["input"] = _describe(e.get("input"))
        if e["type"] == "literal_error":
            msg = f"unknown value {short(e.get('input'))}; expected {ctx.get('expected')}"
        else:
            msg = tmpl.format(**ctx) if tmpl else e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


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
) -> LoadedSuite:
    """Read, apply `profile` and `extra` overrides, validate and expand models and attack grids.

    With `all_profiles`, every other profile of the suite is validated too (an unselected profile's error is
    found now, not when someone selects it). Without `load_plugins`, user plug-ins (`file.py:Class`,
    `module:Class`) are checked by name only: their code is not imported.
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
                _load_one(path, raw, other, extra, load_plugins)
    return loaded


def _load_one(path: Path, raw: dict, profile: str | None, extra: dict | None, load_plugins: bool) -> LoadedSuite:
    overrides: dict[str, Any] = {}
    if profile:
        overrides = deep_merge(overrides, raw["profiles"][profile] or {})
    if extra:
        overrides = deep_merge(overrides, extra)
    merged = deep_merge(raw, overrides)
    shown = f"{path} (profile {profile})" if profile else str(path)
    try:
        suite = Suite.model_validate(merged)
    except ValidationError as exc:
        raise BenchError(shown, _format_validation(exc)) from None
    loaded = LoadedSuite(path=path, suite=suite, profile=profile, overrides=overrides)
    try:
        _resolve(loaded, load_plugins)
        check_loaded(loaded)
    except BenchError as exc:
        raise BenchError(f"{shown}: {exc.where}" if exc.where else shown, exc.message) from None
    return loaded


def _is_plugin(use: str) -> bool:
    """`file.py:Class` or `module:Class`: user code, imported when the suite is resolved with plug-ins."""
    return isinstance(use, str) and ":" in use


def _check_plugin_name(use: str, where: str, base_dir: Path) -> None:
    """A plug-in reference checked without importing it: its form, and for a file that the file exists."""
    target, _, cls_name = use.strip().rpartition(":")
    if not target or not cls_name.isidentifier():
        raise BenchError(where, f"{short(use)}: expected 'file.py:ClassName' or 'module:ClassName'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        file = Path(target).expanduser()
        file = file if file.is_absolute() else base_dir / file
        if not file.is_file():
            raise BenchError(where, f"plug-in file {file} does not exist")


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
        if m.checkpoint and not (ls.base_dir / m.checkpoint).is_file():
            raise BenchError(f"{where}.checkpoint", f"file {ls.base_dir / m.checkpoint} does not exist")
        if m.init_from and m.init_from not in s.models:
            raise BenchError(f"{where}.init_from", f"unknown model {short(m.init_from)}")
        label = m.label or name
        if not m.defense:
            ls.models[name] = ResolvedModel(name, m, None, label, name)
            continue
        from bench.defenses.registry import create_defense, defense_kind

        (dname, dparams), = m.defense.items()
        points = _grid(dparams or {}, f"{where}.defense.{dname}")
        varying = [k for k, v in (dparams or {}).items() if isinstance(v, list)]
        for p in points:
            if load_plugins or not _is_plugin(dname):
                obj = create_defense(dname, p, where=f"{where}.defense.{dname}", base_dir=ls.base_dir)
            else:
                _check_plugin_name(dname, f"{where}.defense", ls.base_dir)
                obj = None
            if obj is not None and defense_kind(obj) != "training":
                raise BenchError(f"{where}.defense.{dname}", "models take training-time defenses only; "
                                 "list preprocessors and wrappers under `defenses:`")
            suffix = "".join(f"-{k}{p[k]}" for k in varying)
            mname = f"{name}-{dname}{suffix}" if varying else name
            mlabel = f"{label} ({dname}" + "".join(f" {k}={p[k]}" for k in varying) + ")" if varying else label
            ls.models[mname] = ResolvedModel(mname, m, (dname, p), mlabel, name)
    for name, d in s.defenses.items():
        from bench.defenses.registry import create_defense, defense_kind

        for target in d.applies_to:
            if target not in ls.models:
                raise BenchError(f"defenses.{name}.applies_to", f"unknown model {short(target)}")
        if not load_plugins and _is_plugin(d.use):
            _check_plugin_name(d.use, f"defenses.{name}.use", ls.base_dir)
            continue
        obj = create_defense(d.use, d.params, where=f"defenses.{name}", base_dir=ls.base_dir)
        if defense_kind(obj) == "training":
            raise BenchError(f"defenses.{name}", "training-time defenses belong under a model's `defense:`")
    for key, a in s.attacks.items():
        _resolve_attack(ls, key, a)
    if s.crosscheck:
        from bench.crosscheck_section import entries

        entries(s.crosscheck, ls.models, ls.base_dir, load_plugins=load_plugins)
    if s.dip is not None:
        if s.dip.classifier not in ls.models:
            raise BenchError("dip.classifier", f"unknown model {short(s.dip.classifier)}")
        from bench.defenses.dip import DIPConfig

        DIPConfig.from_dict(s.dip.params, where="dip.params")
    for i, (src, dst) in enumerate(s.threat_models.transfer):
        for which, m in (("source", src), ("target", dst)):
            if m not in ls.models:
                raise BenchError(f"threat_models.transfer[{i}]", f"unknown {which} model {short(m)}")


def _resolve_attack(ls: LoadedSuite, key: str, a: AttackConfig) -> None:
    where = f"attacks.{key}"
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
            raise BenchError("", _format_validation(exc, (*where.split("."),))) from None
        in_table = all(p.get(k) == v for k, v in table.items()) if table else i == 0
        ls.attacks.append(AttackPoint(key, a.attack, a.backend, params, in_table, varying))
