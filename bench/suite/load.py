"""Reading a suite file: YAML (safe_load), profile overrides, pydantic validation, cross-references.

Every error is a `BenchError` naming the file and the field, e.g.
`suites/x.yaml: attacks.cw.confidence: must be >= 0`.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.attacks.registry import get_attack
from bench.defenses.registry import check_defense
from bench.errors import BenchError, format_validation_error, short
from bench.models.registry import list_models
from bench.plugins.loader import check_spec, is_plugin_spec, source_digest
from bench.suite.loaded import AttackPoint, LoadedSuite, ResolvedModel, suite_sections
from bench.suite.replicas import expand_replicas
from bench.suite.schema import AttackConfig, suite_model
from bench.suite.validate import check_loaded, read_suite_file


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
