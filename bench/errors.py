"""User-facing errors: each names where the problem is (file, field or image) and what was expected."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: pydantic is imported by the modules that validate
    from pydantic import ValidationError


class BenchError(Exception):
    """An error in the user's input. The CLI prints it and exits with status 2."""

    exit_code: int = 2

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class ContractError(BenchError):
    """A plug-in (defense, attack, model) broke its documented contract."""


# Friendlier wording for pydantic's error types; the rest keep pydantic's message.
_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "too_short": "must not be empty",
}


def validation_problems(err: ValidationError, prefix: tuple = ()) -> list[tuple[str, str]]:
    """The one formatter of validation errors: (field path, what was expected) for each error."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (*prefix, *e["loc"]) if not str(p).startswith("function-"))
        tmpl = _MESSAGES.get(e["type"])
        ctx = {k: (f"{v:g}" if isinstance(v, int | float) else v) for k, v in (e.get("ctx") or {}).items()}
        if e["type"] == "literal_error":
            msg = f"unknown value {e.get('input')!r}; expected {ctx.get('expected')}"
        else:
            msg = tmpl.format(**ctx) if tmpl else str(e["msg"]).removeprefix("Value error, ")
        out.append((loc, msg))
    return out


def format_validation_error(err: ValidationError, prefix: tuple = ()) -> str:
    """`field.path: what was expected` for every error, joined by '; '."""
    return "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in validation_problems(err, prefix))


def validation_error(err: ValidationError, where: str) -> BenchError:
    """A `BenchError` whose `where` names the first invalid field under `where`."""
    problems = validation_problems(err)
    loc = problems[0][0] if problems else ""
    return BenchError(f"{where}.{loc}" if loc else where, format_validation_error(err))
