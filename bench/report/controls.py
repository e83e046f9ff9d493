"""The leaderboard's view of the controls (storage only, random noise) and of what each attack ran with.

Controls are shown beside the attacks, never ranked or marked best: Table II's storage-only column and, per
L-inf (L2) attack, the sign (Gaussian) noise control at the table's budget; a noise row per model in each
per-budget table. Norm
columns give the perturbation before storage (the attack's own output) and after storage (what is scored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.attacks.registry import RANDOM_NOISE, STORAGE_ONLY, control_size, declared, effective_params, noise_control
from bench.report.board import Board
from bench.report.format import num, prop, render_params
from bench.report.replicas import attack_accuracy, group_rows, replica_sets
from bench.results.records import AttackMetrics, CraftMetrics

Row = dict[str, Any]


@dataclass
class ControlColumns:
    """Which control columns Table II shows, and their cells."""

    storage: str | None  # the storage-only control's attack, when a cell of it is stored
    noise: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # attack key -> (control, budget)
    cells: dict[tuple[str, str, float | None], Row] = field(default_factory=dict)  # (target, attack, eps) -> row
    replicas: dict[str, list[Row]] = field(default_factory=dict)  # group's variant name -> its replicas' variants

    def value(self, v: Row, attack: str, eps: float | None = None) -> dict | None:
        """The control's accuracy for a group row: the mean over its training replicas."""
        return attack_accuracy([r for rv in self.replicas.get(v["name"], [v])
                                if (r := self.cells.get((rv["name"], attack, eps)))])


def _kind(r: Row) -> str | None:
    return declared(r["attack"], "control")


def control_columns(b: Board) -> ControlColumns:
    cells = {}  # storage only (its size: None), and noise of a given size (not one sized by an attack's examples)
    for r in b.controls:
        kind, size = _kind(r), control_size(r["attack"], r["params"])
        if kind == STORAGE_ONLY or (kind == RANDOM_NOISE and size is not None):
            cells[(r["target"], r["attack"], size)] = r
    noise = {}
    for a in b.ls.attacks:
        ctl = noise_control(a.norm).name
        if a.in_table and a.budget is not None and any(k[1:] == (ctl, a.budget_value) for k in cells):
            noise[a.key] = [(ctl, a.budget_value)]
    storage = next((r["attack"] for r in cells.values() if _kind(r) == STORAGE_ONLY), None)
    return ControlColumns(storage, noise, cells, replica_sets(b))


def grid_control_rows(b: Board, norm: str, axis: str, values: list) -> list[list]:
    """Noise rows (one per model, the mean over its training replicas) for a per-budget table of an L-inf or L2
    attack over its budget `eps` (sign noise, or Gaussian noise of that L2 norm)."""
    if axis != "eps":
        return []
    rows = []
    ctl = control_columns(b)
    what = "noise control" if norm == "linf" else "L2 noise control"
    for v in group_rows(b):
        accs = [ctl.value(v, noise_control(norm).name, float(x)) for x in values]
        if any(a is not None for a in accs):
            rows.append([f"{v['label']} ({what}, not an attack)"] + [prop(a) for a in accs])
    return rows


def storage_label(b: Board) -> str:
    ev = b.s.evaluation
    return f"jpeg q{ev.jpeg_quality}" if ev.storage == "jpeg" else "png"


def norm_headers(b: Board) -> list[str]:
    after = storage_label(b)
    return ["Mean L2 before storage", f"Mean L2 after {after}", f"Median L2 after {after}",
            "Mean Linf before storage", f"Mean Linf after {after}"]


def norm_texts(craft: CraftMetrics | None, m: AttackMetrics) -> list[str]:
    l2_before, linf_before = (craft.l2_before, craft.linf_before) if craft else (None, None)
    return [num(l2_before["mean"]) if l2_before else "n/a", num(m.l2["mean"]), num(m.l2["median"]),
            num(linf_before["mean"], 4) if linf_before else "n/a", num(m.linf["mean"], 4)]


def point_params(b: Board, a) -> str:
    """An attack point's parameters as its backend ran them: from a stored craft cell's metrics (the backend's
    own account), else from the declarations of the backends (`bench.attacks.registry.Backend`)."""
    for r in b.attack:
        if r["attack_key"] == a.key and r["params"] == a.params and isinstance(r["craft_metrics"], dict):
            eff = r["craft_metrics"].get("effective_params")
            if eff:  # the store sorts a record's keys: print them in the suite's order
                return render_params({k: eff[k] for k in [*a.params, *eff] if k in eff})
    return render_params(effective_params(a.attack, a.backend, a.params))
