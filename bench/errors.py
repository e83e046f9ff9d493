"""User-facing errors: each names where the problem is (file, field or image) and what was expected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: pydantic is imported by the modules that validate
    from pydantic import ValidationError

MAX_MESSAGE = 2000  # characters: a message never prints unbounded data (an expanded YAML bomb, a huge value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: messages never print unbounded data."""
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else _short_container(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_container(value: Any, limit: int) -> str:
    # repr of a huge (or alias-expanded) container would be built in full before being cut: walk it lazily.
    parts, size = [], 0
    items = value.items() if isinstance(value, dict) else value
    for item in items:
        piece = f"{item[0]!r}: ..." if isinstance(value, dict) else (
            "[...]" if isinstance(item, (dict, list, tuple)) else repr(item)[:limit])
        parts.append(piece)
        size += len(piece) + 2
        if size > limit:
            break
    open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return open_ + ", ".join(parts) + close


class BenchError(Exception):
    """An error in the user's input. The CLI prints it and exits with status 2."""

    exit_code: int = 2

    def __init__(self, where: str, message: str) -> None:
        self.where = _cut(str(where), MAX_MESSAGE // 4)
        self.message = _cut(str(message), MAX_MESSAGE)
        where, message = self.where, self.message
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


def validation_problems(err: ValidationError, prefix: tuple = ()) -> list[tuple[str, str]]:
    """The one formatter of validation errors: (field path, what was expected) for each error."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (*prefix, *e["loc"]) if not str(p).startswith("function-"))
        tmpl = _MESSAGES.get(e["type"])
        ctx = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in (e.get("ctx") or {}).items()}
        ctx["input"] = _describe(e.get("input"))
        if e["type"] == "literal_error":
            msg = f"unknown value {short(e.get('input'))}; expected {ctx.get('expected')}"
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


def utf8_text(data: bytes, path: object, what: str) -> str:
    """`data` decoded as UTF-8 (a BOM is dropped), or a `BenchError` naming the file's line and the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BenchError(f"{path}:{line}", f"not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x}); "
                         f"save the {what} as UTF-8") from None
