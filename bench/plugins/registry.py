"""The one registry pattern: a named table of things of one kind, filled by decorator, read by one factory
per kind (`create_model`, `get_attack`/`run_attack`, `create_defense`, the cell kinds, the sections)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """`register(name)` is a decorator (or `register(name, obj)` a call); `get(name, where)` raises a
    `BenchError` naming `where` and the known names when `name` is unknown."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        if obj is not None:
            self._items[name] = obj
            return obj

        def deco(o: T) -> T:
            self._items[name] = o
            return o

        return deco

    def get(self, name: str, where: str) -> T:
        if name not in self._items:
            raise BenchError(where, f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._items[name]

    def find(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def values(self) -> list[T]:
        return [self._items[k] for k in self.names()]
