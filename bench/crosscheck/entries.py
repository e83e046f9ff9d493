"""The suite's `crosscheck:` entries, validated (no plan, data or model needed).

Each entry: `{attack, model, implementations: [native, art, foolbox, file.py:MyAttack], params, n}`;
the first implementation is the one under test, the others are references. Images are the first `n`
attacked test fakes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from bench.attacks.registry import get_attack
from bench.config.strict import Strict
from bench.config.types import MAX_COUNT
from bench.errors import BenchError, format_validation_error, short
from bench.plugins.loader import is_plugin_spec as is_user_spec


class CrosscheckEntry(Strict):
    """One cross-check: `attack` from each of `implementations` (the first under test) on `model`."""

    attack: str
    model: str
    implementations: list[str] = Field(min_length=2)
    params: dict[str, Any] = Field(default_factory=dict)
    n: int = Field(16, ge=1, le=MAX_COUNT, strict=True)


def entries(raw: list[CrosscheckEntry | dict], models: dict, base_dir: Path,
            load_plugins: bool = True) -> list[CrosscheckEntry]:
    """Validate the section's entries (as the suite wrote them, or as `CrosscheckEntry`); user attack paths are
    resolved relative to the suite's folder.

    Each implementation is a backend registered for the attack (`native`, `art`, `foolbox`) or a user attack
    (`file.py:Name`, `module:Name`) that is a Python function or class of the attack contract; with
    `load_plugins` false, a user attack is checked by name only (its code is not imported).
    """
    out = []
    for i, item in enumerate(raw):
        try:
            e = CrosscheckEntry.model_validate(item)
        except ValidationError as exc:
            raise BenchError("", format_validation_error(exc, ("crosscheck", i))) from None
        if e.model not in models:
            raise BenchError(f"crosscheck[{i}].model", f"unknown model {short(e.model)}")
        spec = get_attack(e.attack, where=f"crosscheck[{i}].attack")
        try:
            spec.params.model_validate(e.params)
        except ValidationError as exc:
            raise BenchError("", format_validation_error(exc, ("crosscheck", i, "params"))) from None
        impls = []
        for j, impl in enumerate(e.implementations):
            where = f"crosscheck[{i}].implementations[{j}]"
            path, sep, name = impl.partition(":")
            if sep and path.endswith(".py") and not Path(path).is_absolute():
                impl = f"{base_dir / path}:{name}"
            if is_user_spec(impl) and path.split(".")[0] in sys.stdlib_module_names:
                raise BenchError(where, f"{short(impl)} is from the standard library, not an attack: name a "
                                 "registered backend or your attack's 'file.py:Name'")
            if not is_user_spec(impl):
                if impl not in spec.backends:
                    raise BenchError(where, f"{short(impl)} is not an implementation of {e.attack}; use one of "
                                     f"{', '.join(sorted(spec.backends))} or a user attack 'file.py:Name'")
            elif load_plugins:
                from bench.attacks.user import load_user_attack  # lazy: runs the user's code (torch)

                load_user_attack(impl, where=where)
            elif path.endswith(".py") and not Path(impl.rpartition(":")[0]).is_file():
                raise BenchError(where, f"attack file {impl.rpartition(':')[0]} does not exist")
            impls.append(impl)
        out.append(e.model_copy(update={"implementations": impls}))
    return out
