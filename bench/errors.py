"""User-facing errors: each names where the problem is (file, field or image) and what was expected."""

from __future__ import annotations


class BenchError(Exception):
    """An error in the user's input. The CLI prints it and exits with status 2."""

    exit_code: int = 2

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class ContractError(BenchError):
    """A plug-in (defense, attack, model) broke its documented contract."""
