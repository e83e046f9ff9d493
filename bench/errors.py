"""User-facing errors: each names where the problem is (file, field or image) and what was expected."""

from __future__ import annotations

MAX_MESSAGE = 2000  # characters: a message never prints unbounded data (an expanded YAML bomb, a huge value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
