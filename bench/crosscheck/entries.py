"""The suite's `crosscheck:` entries, validated (no plan, data or model needed).

Each entry: `{attack, model, implementations: [native, art, foolbox, file.py:MyAttack], params, n}`;
the first implementation is the one under test, the others are references. Images are the first `n`
attacked test fakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError, format_validation_error


class CrosscheckEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attack: str
    model: str
    implementations: list[str] = Field(min_length=2)
    params: dict[str, Any] = Field(default_factory=dict)
    n: int = Field(16, ge=1)


def entries(raw: list[dict], models: dict, base_dir: Path) -> list[CrosscheckEntry]:
    """Validate the section; user attack paths are resolved relative to the suite's folder."""
    out = []
    for i, item in enumerate(raw):
        try:
            e = CrosscheckEntry.model_validate(item)
        except ValidationError as exc:
            raise BenchError("", format_validation_error(exc, ("crosscheck", i))) from None
        if e.model not in models:
            raise BenchError(f"crosscheck[{i}].model", f"unknown model {e.model!r}")
        impls = []
        for impl in e.implementations:
            path, sep, name = impl.partition(":")
            if sep and path.endswith(".py") and not Path(path).is_absolute():
                impl = f"{base_dir / path}:{name}"
            impls.append(impl)
        out.append(e.model_copy(update={"implementations": impls}))
    return out
