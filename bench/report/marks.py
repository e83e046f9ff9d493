"""What the leaderboard's tables share: averages over grids of models, the best value in a column, and the notes
on the marks (best *, degenerate †, attack gave up ‡)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from bench.report.board import Board
from bench.report.format import prop


def grid_groups(b: Board) -> dict[tuple[str, str], list[str]]:
    """Grids of training defenses: (base model, defense) -> model names (more than one)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, rm in b.ls.models.items():
        if rm.training_defense and rm.replica == 0:  # replicas are averaged inside each model's row
            out[(rm.base, rm.training_defense[0])].append(name)
    return {k: v for k, v in out.items() if len(v) > 1}


def grid_label(b: Board, base: str, dname: str, names: list[str]) -> str:
    return f"Average {b.ls.models[names[0]].config.label or base} ({dname}, {len(names)} models)"


def mark_best(rows: list[list], values: list[list[dict | None]], eligible: list[bool],
              fmt: Callable[..., str] = prop) -> None:
    """Mark the best value in each column (highest accuracy) among the rows that may be marked best (`eligible[i]`:
    a single model not flagged degenerate, `bench.report.replicas.may_be_best`; never an average over models);
    `values[i][j]` is the value behind `rows[i][j + 1]`."""
    if not values:
        return
    for j in range(len(values[0])):
        col = [(v[j]["value"] if v[j] and v[j].get("n") and ok else -1.0)
               for v, ok in zip(values, eligible, strict=True)]
        best = max(col)
        if best < 0 or len(values) < 2 or all(c == best for c in col):
            continue
        for i, v in enumerate(values):
            if col[i] == best and eligible[i]:
                rows[i][j + 1] = fmt(v[j], mark=True)


def best_note(b: Board) -> str:
    note = "*Best in each column (among single models)"
    if b.degenerate:
        note += ("; † marks a model the degenerate-classifier check flags (it calls most images of one class the "
                 "other class), never marked best: see Sanity checks")
    return note + ".*"


def gave_up_note(b: Board) -> str:
    return ("‡ the attack returned most of the fakes it attacked unperturbed (attack-left-images-unchanged: for "
            "CW-L2, kappa out of the model's reach), so the number says the attack gave up, not that the model "
            "is robust; never marked best, left out of averages." if b.gave_up else "")
