"""Leaderboard rows over training replicas (`seeds: N`): one row per model (or model + defense) with the mean
over its replicas, each metric as its record declares (`bench.results.records`; a proportion's interval covers
training seeds and test sampling, `bench.results.metrics.replica_mean`).

With one seed every function here returns exactly what the single cell holds, so one-seed leaderboards are
unchanged apart from the ranking's ties."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report.board import Board
from bench.report.format import prop
from bench.results.metrics import Proportion, replica_mean
from bench.results.records import AttackMetrics, CleanMetrics

Row = dict[str, Any]


def _replica(b: Board, model: str) -> tuple[str, int]:
    mc = b.results.plan.models.get(model)
    return (mc.model.group_name, mc.model.replica) if mc else (model, 0)


def replica_sets(b: Board) -> dict[str, list[Row]]:
    """Each group's representative variant (replica 0's) name -> the variant rows of all its replicas."""
    groups: dict[tuple[str, str | None], list[tuple[int, Row]]] = {}
    for v in b.variants:
        group, r = _replica(b, v["model"])
        groups.setdefault((group, v["defense"]), []).append((r, v))
    out = {}
    for members in groups.values():
        members.sort(key=lambda t: t[0])
        out[members[0][1]["name"]] = [v for _, v in members]
    return out


def own_seeds_line(b: Board) -> list[str]:
    """The header's line naming the models whose own `seeds` differ from the suite's (none: no line)."""
    own = {rm.group_name: rm.config.seeds for rm in b.ls.models.values()
           if rm.config.seeds is not None and rm.config.seeds != b.s.seeds}
    if not own:
        return []
    return ["- Models with their own number of training seeds: "
            + ", ".join(f"{name} ({k} seed{'s' if k > 1 else ''})" for name, k in own.items()) + "."]


def group_rows(b: Board) -> list[Row]:
    """The variants that stand for their group in tables (replica 0 of each model, in plan order)."""
    sets = replica_sets(b)
    return [v for v in b.variants if v["name"] in sets]


def seeds_of(b: Board, v: Row) -> int:
    return len(replica_sets(b).get(v["name"], [v]))


def degenerate_count(b: Board, v: Row) -> int:
    """How many of the group's replicas the degenerate-classifier check flags."""
    return sum(r["name"] in b.degenerate for r in replica_sets(b).get(v["name"], [v]))


def may_be_best(b: Board, v: Row) -> bool:
    """Whether the group's row may be marked best in a column: none of its replicas is flagged degenerate."""
    return degenerate_count(b, v) == 0


def group_label(b: Board, v: Row) -> str:
    """The group's label; a dagger when any replica is flagged degenerate (with how many of k seeds)."""
    flagged, k = degenerate_count(b, v), seeds_of(b, v)
    if not flagged:
        return v["label"]
    return v["label"] + (f" ({flagged} of {k} seeds flagged)" if k > 1 else "") + " †"


def clean_over_seeds(b: Board, v: Row) -> CleanMetrics | None:
    """The group's clean metrics: each field the mean over its replicas, as declared (None: no replica's stored)."""
    return CleanMetrics.over_seeds([b.clean_records[r["name"]] for r in replica_sets(b).get(v["name"], [v])])


def clean_metric(b: Board, v: Row, column: str) -> dict | None:
    """A Table I proportion of the group: the mean over its replicas."""
    agg = clean_over_seeds(b, v)
    return getattr(agg, column) if agg else None


def clean_auroc(b: Board, v: Row) -> float | None:
    agg = clean_over_seeds(b, v)
    return agg.auroc if agg else None


def attack_cells(b: Board, v: Row, key: str, threat: str, in_table: bool = True,
                 adaptive: bool = False) -> list[Row]:
    """The group's attack cells of one Table II column, one per replica that has it."""
    cells = [b.cell(r, key, threat, in_table=in_table, adaptive=adaptive) for r in replica_sets(b).get(v["name"], [v])]
    return [c for c in cells if c is not None]


def attack_over_seeds(cells: list[Row]) -> AttackMetrics | None:
    """Attack cells' metrics (one cell per replica; cells not stored left out): each field the mean over the
    replicas, as declared."""
    return AttackMetrics.over_seeds([m for c in cells if (m := AttackMetrics.of(c["metrics"]))])


def attack_accuracy(cells: list[Row]) -> dict | None:
    """The accuracy on the attacked fakes of attack cells, one per replica: the mean over the replicas."""
    agg = attack_over_seeds(cells)
    return agg.accuracy if agg else None


def aggregate_cells(b: Board, cells: list[Row], fmt: Callable[[dict | None], str] = prop) -> tuple[dict | None, str]:
    """(accuracy for ranking and averages, its text in `fmt`) over a group's replica cells. A cell whose attack
    gave up flags the group's cell with a double dagger (and how many of k seeds) and leaves it out of ranking."""
    stored = [c for c in cells if isinstance(c["metrics"], dict)]
    if not stored:
        return None, "n/a"
    agg = attack_accuracy(stored)
    gave = sum(c["craft_key"] in b.gave_up for c in stored)
    if gave:
        return None, fmt(agg) + " ‡" + (f" ({gave} of {len(stored)} seeds)" if len(stored) > 1 else "")
    return agg, fmt(agg)


def pool_groups(aggs: list[dict | None]) -> dict | None:
    """An average over a grid of models: replica r's counts pooled over the models, then the mean over replicas."""
    ok = [a for a in aggs if a and a.get("n")]
    if not ok:
        return None
    k = max(len(a["replicas"]) for a in ok)
    pooled = []
    for r in range(k):
        parts = [a["replicas"][r] for a in ok if len(a["replicas"]) > r]
        pooled.append(Proportion(sum(p["k"] for p in parts), sum(p["n"] for p in parts)).as_dict())
    return replica_mean(pooled)
