"""The suite validation pass: everything that can be wrong with a suite file is found here, before anything runs.

Two stages, both raising `BenchError(where, message)` that names the file and the field:

- `read_suite_file`: the file itself. Size limit, UTF-8, YAML (safe loader) with duplicate keys refused and
  alias expansion bounded (a "billion laughs" suite is refused without building it), a mapping at the top,
  every profile a mapping.
- `check_loaded`: the meaning of a suite that pydantic accepted and `bench.suite.load` resolved. Model
  references and `init_from` cycles, each architecture's minimum input size, `table:` points inside their
  grids, counts within `LIMITS`, and the memory the data would take.

Error messages never print unbounded data: values are shown through `short()`.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError

from bench.attacks.registry import get_attack, noise_control
from bench.config.work import check_work
from bench.errors import BenchError, format_validation_error, short, utf8_text
from bench.suite.controls import control_point, derived_checks
from bench.suite.loaded import LoadedSuite

LIMITS = {
    "suite_bytes": 1 << 20,  # a suite file is at most 1 MiB
    "yaml_nodes": 100_000,  # YAML nodes after alias expansion
    "models": 256,  # models after grid expansion
    "attack_settings": 4096,  # attack grid points, all attacks together
    "data_bytes": 8 << 30,  # images as float32 in memory (n x 3 x size x size x 4 bytes)
}

# Smallest square input each built-in architecture can take (VGG's five 2x2 poolings need 32 px).
MIN_INPUT_SIZE = {"vgg16": 32, "vgg16_bn": 32}


class _SuiteLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML says keys are unique)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    mark = key_node.start_mark
                    raise BenchError(
                        f"{self.name}:{mark.line + 1}:{mark.column + 1}",
                        f"duplicate key {short(key)} (first given on line {first.line + 1}); "
                        "each key may appear once in a mapping",
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_SuiteLoader.add_constructor("tag:yaml.org,2002:map", _SuiteLoader.construct_yaml_map)


def _expanded_size(root: yaml.Node, limit: int, where: str) -> int:
    """Nodes the document has once aliases are expanded; refuses more than `limit`, and recursive aliases."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise BenchError(where, "a YAML alias refers to itself (a recursive structure); suites must be trees")
        active.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        active.discard(key)
        if total > limit:
            raise BenchError(where, f"the YAML expands to more than {limit:,} nodes (through aliases: "
                             "an alias bomb?); write the suite out or make it smaller")
        sizes[key] = total
        return total

    return size(root)


def parse_yaml(text: str, where: str) -> Any:
    """Parse one YAML document safely: duplicate keys and runaway alias expansion are errors naming `where`."""
    loader = None
    try:
        loader = _SuiteLoader(text)
        loader.name = where
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, LIMITS["yaml_nodes"], where)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise BenchError(f"{where}:{line}", f"unacceptable character {exc.character:#x} in YAML (a control "
                         "character or a stray byte)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        kind = "unsupported YAML" if isinstance(exc, ConstructorError) else "malformed YAML"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise BenchError(at, f"{kind} ({problem[:200]})") from None
    except RecursionError:
        raise BenchError(where, "the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_suite_file(path: Path) -> dict:
    """A suite file's top-level mapping, after the file-level checks above."""
    path = Path(path)
    if path.is_dir():
        raise BenchError(str(path), "is a folder, not a suite file (give the .yaml file)")
    if not path.is_file():
        raise BenchError(str(path), "suite file does not exist")
    try:
        size = path.stat().st_size
        if size > LIMITS["suite_bytes"]:
            raise BenchError(str(path), f"suite file is {size:,} bytes; the limit is {LIMITS['suite_bytes']:,}")
        data = path.read_bytes()
    except OSError as exc:
        raise BenchError(str(path), f"cannot read the suite file ({exc.strerror or exc})") from None
    text = utf8_text(data, path, "suite")
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise BenchError(str(path), "a suite must be a YAML mapping at the top level")
    profiles = raw.get("profiles")
    if profiles is not None:
        if not isinstance(profiles, dict):
            raise BenchError(f"{path}: profiles", f"expected a mapping of profile names to overrides, got "
                             f"{type(profiles).__name__} {short(profiles)}")
        for name, value in profiles.items():
            if value is not None and not isinstance(value, dict):
                raise BenchError(f"{path}: profiles.{str(name)[:40]}", "a profile is a mapping of overrides, "
                                 f"got {type(value).__name__} {short(value)}")
    return raw


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,99}")  # what a suite may call a model, defense, attack, profile


def single_line(text: str) -> bool:
    """No control or format characters and no line or paragraph separators (a tab or newline included)."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def _check_names(ls: LoadedSuite) -> None:
    """Names become file names (checkpoints, leaderboards) and table cells: identifiers of letters, digits and
    `_ . + = -` (at most 100); a model grid's expanded names and every label are single lines."""
    s = ls.suite
    groups = {"models": list(s.models), "defenses": list(s.defenses), "attacks": list(s.attacks),
              "profiles": list(s.profiles)}
    for section, names in groups.items():
        for name in names:
            text = str(name)
            if not NAME.fullmatch(text):
                raise BenchError(f"{section}.{short(text, 40)[1:-1]}", f"{short(text, 60)} cannot be a name: names "
                                 "become file names and table cells (letters, digits and _ . + = -, starting with a "
                                 "letter, digit or _, at most 100 characters)")
    for name, m in ls.models.items():
        if not single_line(name) or any(c in name for c in "/\\") or len(name) > 200:
            raise BenchError(f"models.{m.base}", f"its grid expands to the name {short(name, 60)}, which cannot be a "
                             "file name (one line, no / or \\, at most 200 characters)")
        if not single_line(m.label):
            raise BenchError(f"models.{m.base}.label", f"{short(m.label, 60)}: a label is one line of text (no "
                             "newline, tab or other control character)")
    for name, d in s.defenses.items():
        if d.label is not None and not single_line(d.label):
            raise BenchError(f"defenses.{name}.label", f"{short(d.label, 60)}: a label is one line of text (no "
                             "newline, tab or other control character)")
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t\r" for c in s.description):
        raise BenchError("description", "holds a control character: a description is text (newlines allowed; the "
                                        "leaderboard prints it as one paragraph)")


def check_leaderboard_dir(ls: LoadedSuite) -> None:
    """`report.leaderboard_dir` is a folder below the working directory: a suite cannot write elsewhere (an
    absolute path or `..`); `--out` on the command line can."""
    d = ls.suite.report.leaderboard_dir
    p = Path(d)
    if not d or p.is_absolute() or ".." in p.parts or p.drive or not single_line(d):
        raise BenchError("report.leaderboard_dir", f"{short(d, 80)}: must be a relative folder without `..` (a "
                         "suite writes below the working directory); give --out on the command line to write "
                         "elsewhere")


def check_loaded(ls: LoadedSuite) -> None:
    """Semantic checks of a resolved suite; `where` is relative to the file (the caller prefixes it)."""
    s = ls.suite
    _check_names(ls)
    check_leaderboard_dir(ls)
    _check_model_references(ls)
    size = s.data.size
    for m in ls.models.values():
        need = MIN_INPUT_SIZE.get(m.config.arch)
        if need and size < need:
            raise BenchError(f"models.{m.base}.arch", f"{m.config.arch} needs images of at least {need} px; "
                             f"data.size is {size}")
    if len(ls.models) > LIMITS["models"]:
        raise BenchError("models", f"{len(ls.models)} models after grid expansion; the limit is {LIMITS['models']}")
    if len(ls.attacks) > LIMITS["attack_settings"]:
        raise BenchError("attacks", f"{len(ls.attacks)} attack settings after grid expansion; the limit is "
                         f"{LIMITS['attack_settings']}")
    _check_tables(ls)
    _check_budgets(ls)
    _check_work(ls)
    _check_derived(ls)
    if s.data.source == "synthetic-faces":
        need_bytes = s.data.n * 3 * size * size * 4
        if need_bytes > LIMITS["data_bytes"]:
            raise BenchError("data.n", f"{s.data.n} images of {size} px need {need_bytes / 2**30:.1f} GiB in memory; "
                             f"the limit is {LIMITS['data_bytes'] / 2**30:.0f} GiB")


def _check_work(ls: LoadedSuite) -> None:
    s = ls.suite
    for ap in ls.attacks:
        check_work(ap.params, f"attacks.{ap.key}")
    for name, d in s.defenses.items():
        check_work(d.params, f"defenses.{name}.params")


def _check_budgets(ls: LoadedSuite) -> None:
    """A budget of 0 is no attack (ART's FGSM and PGD refuse it mid-run): refused here."""
    for ap in ls.attacks:
        if ap.budget is not None and ap.budget_value == 0:
            raise BenchError(f"attacks.{ap.key}.{ap.budget}", "a budget of 0 is no attack (the storage-only "
                             "control already scores the unperturbed fakes through storage); give a budget > 0")


def _check_derived(ls: LoadedSuite) -> None:
    """The attacks a run adds (noise controls at each L-inf budget, the check attacks) validated as the plan
    will build them, each error named by the suite field it comes from: `validate` says valid only for a
    suite whose every parameter model holds."""
    if ls.suite.evaluation.controls:
        for ap in ls.attacks:
            if ap.budget is None or ap.norm != "linf" or ap.family == "control":
                continue
            try:
                noise = noise_control("linf")
                control_point(noise.name, noise.name, {noise.params.size_param: ap.budget_value, "seed": ls.suite.seed})
            except ValidationError as exc:
                raise BenchError(f"attacks.{ap.key}.{ap.budget}", f"{ap.budget_value:g} cannot be an L-inf budget: "
                                 f"its noise control refuses it ({format_validation_error(exc)}); pixel values lie "
                                 "in [0, 1], so eps 1 already allows any image") from None
    for where, ap in derived_checks(ls):
        get_attack(ap.attack).params.model_validate(ap.params)
        check_work(ap.params, where)


def _check_model_references(ls: LoadedSuite) -> None:
    models = ls.suite.models
    for name, m in models.items():
        if m.baseline is not None:
            _check_baseline(ls, name, m.baseline)
        if not m.init_from:
            continue
        where = f"models.{name}.init_from"
        chain, current = [name], m.init_from
        while current is not None:
            if current not in models:
                raise BenchError(where, f"unknown model {short(current)}")
            if current in chain:
                cycle = " -> ".join([*chain[chain.index(current):], current])
                raise BenchError(where, f"init_from makes a cycle ({short(cycle, 200)[1:-1]})")
            chain.append(current)
            current = models[current].init_from
        src = models[m.init_from]
        if m.init_from not in ls.models:
            raise BenchError(where, f"{m.init_from!r} is a grid of models; name one of them")
        if src.arch != m.arch:
            raise BenchError(where, f"{m.init_from!r} is a {src.arch}, this model a {m.arch}: the weights do not fit")


def _check_baseline(ls: LoadedSuite, name: str, baseline: str) -> None:
    """A model's `baseline:` names another (single, replica-0) model of the suite."""
    where = f"models.{name}.baseline"
    target = ls.models.get(baseline)
    if target is None or target.replica != 0:
        grid = baseline in ls.suite.models
        raise BenchError(where, f"{short(baseline)} is a grid of models; name one of them" if grid
                         else f"unknown model {short(baseline)}")
    if target.base == name:
        raise BenchError(where, f"{short(baseline)} is this model itself; name the undefended model to compare with")


def _check_tables(ls: LoadedSuite) -> None:
    for key, a in ls.suite.attacks.items():
        if not a.table:
            continue
        items = a.param_items()
        for k, v in a.table.items():
            values = items[k] if isinstance(items[k], list) else [items[k]]
            if not any(v == x and isinstance(v, bool) == isinstance(x, bool) for x in values):
                raise BenchError(f"attacks.{key}.table.{k}", f"{short(v)} is not a point of the grid "
                                 f"{short(values)}; Table II would show nothing")
