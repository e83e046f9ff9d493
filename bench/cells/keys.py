"""Cell keys: each cell kind declared once with the version of its meaning, and `cell_key`, the one function
that names a cell (the digest of the kind, its version and the parts that determine its result).

A cell's key is `cell_key(kind, *parts)`: the digest of the kind's name, its declared version and the parts
that determine its result (`bench.suite.plan` and the sections' planners build every key through it). A change
to what a kind computes bumps that kind's version (its last component) and re-keys only its own cells and the
cells whose keys hash theirs (an attack cell hashes its craft's key, every cell of a model hashes the model's).

Versions are tuples so that the keys stored before per-kind versions stay byte for byte: until then every key
hashed one global plan version (3), then, for some kinds, their own (craft 2, crosscheck 2, certify 1); the
adaptive DIP cells hashed their own (3) before the plan's.

Kept apart from `bench.cells.registry` (the compute functions): planning a suite builds every key without
importing what runs cells.
"""

from __future__ import annotations

from typing import Any

from bench.results.digests import digest

Version = tuple[int, ...]
VERSIONS: dict[str, Version] = {}  # kind -> the version its keys hash


def declare_kind(kind: str, version: Version) -> None:
    """Declare a cell kind and the version of its meaning (bump the last component when what it computes
    changes). Declared where the kind is planned, before any key of it is built; declaring it again with
    another version is an error (two meanings for one name)."""
    known = VERSIONS.setdefault(kind, tuple(version))
    if known != tuple(version):
        raise ValueError(f"cell kind {kind!r} declared twice, with versions {known} and {tuple(version)}")


def cell_key(kind: str, *parts: Any) -> str:
    """The key of a cell of `kind` (declared) determined by `parts` (plain data, keys of the cells it reads)."""
    if kind not in VERSIONS:
        raise KeyError(f"cell kind {kind!r} is not declared (bench.cells.keys.declare_kind)")
    return digest([kind, *VERSIONS[kind], *parts])


# The built-in kinds. A section declares its own kinds where it plans them.
declare_kind("model", (3,))
declare_kind("clean", (3,))
declare_kind("gradnorm", (3,))
# 2: APGD and Square return their best iterate; noise_l2 ignores the images its attack left unperturbed
declare_kind("craft", (3, 2))
declare_kind("attack", (3,))

__all__ = ["VERSIONS", "Version", "cell_key", "declare_kind"]
