"""Sanity flags grouped for reading: one row per (check, model group) with how many of its training seeds fired
and the worst instance, each linking its doc and saying what to do; a check that fires on many groups collapses
to one row. Every flag stays listed, one row per flag, in the appendix (`every_flag_table`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.report.format import tabulate
from bench.report.sanity import ALL_CHECKS, Flag

# A check that fires on more model groups than this is one row (its groups listed): one cause, said once.
COLLAPSE_OVER = 2
DOCS = Path(__file__).resolve().parents[2] / "docs" / "checks"


@dataclass(frozen=True)
class FlagGroup:
    """One row: a check on one or more model groups (labels), how many seeds fired of how many, the flags."""

    check: str
    groups: tuple[str, ...]
    labels: tuple[str, ...]
    fired: int  # replicas (seeds) on which the check fired, summed over the groups
    seeds: int  # replicas of those groups
    flags: tuple[Flag, ...]

    @property
    def worst(self) -> Flag:
        return max(self.flags, key=lambda f: f.severity)

    @property
    def doc(self) -> str:
        return f"docs/checks/{self.check}.md"


def group_flags(flags: list[Flag], group_of: dict[str, str], seeds_of: dict[str, int],
                labels: dict[str, str] | None = None, collapse_over: int = COLLAPSE_OVER) -> list[FlagGroup]:
    """Flags (on variant names) as rows: per (check, group of the variant: `group_of`, itself when unknown) the
    distinct replicas that fired out of `seeds_of[group]`; a check on more than `collapse_over` groups is one row.
    Rows keep the order in which checks first fired."""
    labels = labels or {}
    by: dict[str, dict[str, list[Flag]]] = {}
    for f in flags:
        by.setdefault(f.check, {}).setdefault(group_of.get(f.model, f.model), []).append(f)
    rows: list[FlagGroup] = []
    for check, groups in by.items():
        parts = [FlagGroup(check, (g,), (labels.get(g, g),), len({f.model for f in fl}), seeds_of.get(g, 1),
                           tuple(fl)) for g, fl in groups.items()]
        if len(parts) > collapse_over:
            parts = [FlagGroup(check, tuple(g for p in parts for g in p.groups),
                               tuple(x for p in parts for x in p.labels), sum(p.fired for p in parts),
                               sum(p.seeds for p in parts), tuple(f for p in parts for f in p.flags))]
        rows += parts
    return rows


@cache
def what_to_do(check: str) -> str:
    """The first sentence of the check's doc's "What to do." paragraph (empty when the docs are not installed)."""
    path = DOCS / f"{check}.md"
    try:
        text = path.read_text()
    except OSError:
        return ""
    found = re.search(r"\*\*What to do\.\*\*\s*(.+?\.)(\s|$)", text, re.S)
    return " ".join(found.group(1).split()) if found else ""


def _seeds_text(g: FlagGroup) -> str:
    return f"{g.fired} of {g.seeds} seeds" if g.seeds > 1 else ("fired" if g.fired else "")


def grouped_table(rows: list[FlagGroup], link_prefix: str = "../") -> str:
    body = []
    for g in rows:
        who = g.labels[0] if len(g.labels) == 1 else f"{len(g.labels)} models: " + ", ".join(g.labels)
        body.append([f"[{g.check}]({link_prefix}{g.doc})", who, _seeds_text(g), len(g.flags), g.worst.message,
                     what_to_do(g.check)])
    return tabulate(body, ["Check", "Model", "Seeds", "Instances", "Worst instance", "What to do"],
                    tablefmt="github")


def checks_run_text(link_prefix: str = "../") -> str:
    return ", ".join(f"[{n}]({link_prefix}docs/checks/{n}.md)" for n in (c.__name__.replace("_", "-")
                                                                         for c in ALL_CHECKS))


def every_flag_table(flags: list[Flag], link_prefix: str = "../") -> str:
    rows = [[f.model, f"[{f.check}]({link_prefix}{f.doc})", f.message] for f in flags]
    return tabulate(rows, ["Model", "Check", "What fired"], tablefmt="github")
