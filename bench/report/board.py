"""The Board: a suite's stored results as the leaderboard's sections read them (`bench.results.query` frames as row
lists, and what is derived from them once: flags, groups, the cells of a table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.report.sanity import attack_gave_up, degenerate_classifier
from bench.results.query import Results
from bench.results.records import CleanMetrics

Row = dict[str, Any]
UNAWARE = "storage-unaware (the paper's setting)"  # how a storage-unaware attack's column says so


@dataclass
class Board:
    """A suite's results as the sections read them: the frames as row lists, and what is derived from them
    once (flags, groups). Sections are functions of a Board; they draw figures into `out_dir`."""

    results: Results
    out_dir: Path
    figures: list[Path] = field(default_factory=list)

    @property
    def ls(self):
        return self.results.ls

    @property
    def s(self):
        return self.results.ls.suite

    @cached_property
    def variants(self) -> list[Row]:
        return self.results.variants.to_dict("records")

    @cached_property
    def every_cell(self) -> list[Row]:
        """Every attack-frame row: the suite's attacks, the controls and the check attacks."""
        return self.results.attacks.to_dict("records") if len(self.results.attacks) else []

    @cached_property
    def attack(self) -> list[Row]:
        """The suite's own attack cells (controls and check attacks are never ranked or averaged)."""
        return [r for r in self.every_cell if (r.get("role") or "attack") == "attack"]

    @cached_property
    def controls(self) -> list[Row]:
        return [r for r in self.every_cell if r.get("role") == "control"]

    @cached_property
    def gradnorms(self) -> dict[str, dict | None]:
        return {v["name"]: none_if_missing(v.get("gradnorm")) for v in self.variants}

    @cached_property
    def clean(self) -> dict[str, dict | None]:
        return {v["name"]: none_if_missing(v["metrics"]) for v in self.variants}

    @cached_property
    def clean_records(self) -> dict[str, CleanMetrics | None]:
        """The clean metrics as records (`bench.results.records`), per variant name."""
        return {name: CleanMetrics.of(m) for name, m in self.clean.items()}

    @cached_property
    def degenerate(self) -> frozenset[str]:
        """Variants the degenerate-classifier check flags: never marked best, labelled with a dagger."""
        return frozenset(f.model for f in degenerate_classifier(self.clean))

    @cached_property
    def gave_up(self) -> frozenset[str]:
        """Craft keys whose attack returned most of the fakes it attacked unperturbed (the
        attack-left-images-unchanged check): every cell made from them is marked with a double dagger and
        never marked best."""
        return frozenset(r["craft_key"] for r in self.attack if attack_gave_up(r))

    def attack_title(self, key: str) -> str:
        """The column title of a suite's attack entry (its declared title, storage-unaware ones labelled, with the
        key when titles repeat)."""
        first = next(a for a in self.ls.attacks if a.key == key)
        title = first.title if first.storage_aware else f"{first.title}, {UNAWARE}"
        sharing = {a.key for a in self.ls.attacks
                   if a.attack == first.attack and a.storage_aware == first.storage_aware}
        return title if len(sharing) == 1 else f"{title} ({key})"

    def attack_keys(self) -> list[str]:
        return list(dict.fromkeys(a.key for a in self.ls.attacks))

    def cell(self, v: Row, key: str, threat: str, in_table: bool = True, adaptive: bool = False) -> Row | None:
        """The attack cell of attack entry `key` against variant `v` under `threat` (its Table II point)."""
        for r in self.attack:
            if r["target"] != v["name"] or r["attack_key"] != key or r["threat"] != threat:
                continue
            if in_table and not r["in_table"]:
                continue
            if bool(r["adaptive"]) != adaptive:
                continue
            return r
        return None


def none_if_missing(x: Any) -> Any:
    """pandas turns a missing dict into NaN; the sections want None."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else x
