"""The results store: SQLite (stdlib), one row per finished cell, per-image predictions beside it.

A cell is named by a hash of everything that determines its result, so a rerun finds it and
skips it; each cell is committed on its own, so an interrupted run loses at most the cell in flight.
Every cell row describes itself in typed columns (kind, model, defense, attack and its parameters,
threat model, source and target, adaptive or not, data digest, suite and profile); every run stores
its plan, so reports and exports need nothing but this file (see `bench.results`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT NOT NULL, profile TEXT, started REAL NOT NULL, finished REAL,
    git_commit TEXT, versions TEXT, seed INTEGER, device TEXT, overrides TEXT,
    cells_computed INTEGER DEFAULT 0, cells_reused INTEGER DEFAULT 0, status TEXT, plan TEXT,
    pid INTEGER, host TEXT, machine TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    metrics TEXT NOT NULL,
    duration_s REAL NOT NULL,
    device TEXT,
    run_id INTEGER REFERENCES runs(run_id),
    created REAL NOT NULL,
    suite TEXT, profile TEXT, model TEXT, variant TEXT, defense TEXT, attack TEXT, attack_key TEXT,
    backend TEXT, params TEXT, threat TEXT, source TEXT, target TEXT, adaptive INTEGER, data_digest TEXT,
    seed INTEGER, model_group TEXT
);
CREATE TABLE IF NOT EXISTS predictions (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
    image_id TEXT NOT NULL,
    label INTEGER NOT NULL,
    p_real REAL NOT NULL,
    l2 REAL,
    l2_before REAL,
    PRIMARY KEY (cell_id, image_id)
);
"""


# Typed descriptor columns of a cell, in order (stores made before them gain them on open).
# `seed` is the training replica of the cell's model (0 for a one-seed suite), `model_group` replica 0's name.
DESCRIPTOR_COLUMNS = ("suite", "profile", "model", "variant", "defense", "attack", "attack_key", "backend", "params",
                      "threat", "source", "target", "adaptive", "data_digest", "seed", "model_group")
# Per-image columns of an attack cell's predictions (NULL for other cells, and for rows stored before them):
# `l2` the L2 distance between the clean image and the stored adversarial image the cell scored, `l2_before`
# the attack's own float output's (before storage). Readers treat NULL as "not recorded", never as 0.
NORM_COLUMNS = ("l2", "l2_before")
_ADDED_COLUMNS = {"runs": {"plan": "TEXT", "pid": "INTEGER", "host": "TEXT", "machine": "TEXT"},
                  "cells": {c: ("INTEGER" if c in ("adaptive", "seed") else "TEXT") for c in DESCRIPTOR_COLUMNS},
                  "predictions": {c: "REAL" for c in NORM_COLUMNS}}

# A cell's per-image predictions: (image ids, labels, P(real)), and for an attack cell also its per-image
# L2 after and before storage (arrays, NaN where unknown).
Predictions = (tuple[list[str], np.ndarray, np.ndarray]
               | tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None])


@dataclass
class CellResult:
    cell_id: str
    kind: str
    key: dict[str, Any]
    metrics: dict[str, Any]
    duration_s: float
    device: str | None
    run_id: int | None


class ResultStore:
    """A thin layer over one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self._migrate()
        self.db.commit()

    def _migrate(self) -> None:
        """Add the columns a store made by an older version lacks (their values stay NULL)."""
        for table, cols in _ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for col, typ in cols.items():
                if col not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")

    def close(self) -> None:
        self.db.close()

    # runs ---------------------------------------------------------------
    def start_run(self, suite: str, profile: str | None, **prov: Any) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (suite, profile, started, git_commit, versions, seed, device, overrides, status, machine)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            (suite, profile, time.time(), prov.get("git_commit"), json.dumps(prov.get("versions", {})),
             prov.get("seed"), prov.get("device"), json.dumps(prov.get("overrides", {})),
             json.dumps(prov.get("machine", {}))),
        )
        self.db.commit()
        return int(cur.lastrowid)

    def set_plan(self, run_id: int, plan: dict[str, Any]) -> None:
        """Store what a run computes (the suite as resolved and its plan), for reports from the store alone.
        Key order is kept (not sorted): the leaderboard prints parameters and overrides in the suite's order."""
        self.db.execute("UPDATE runs SET plan=? WHERE run_id=?", (json.dumps(plan), run_id))
        self.db.commit()

    def finish_run(self, run_id: int, computed: int, reused: int, status: str = "finished") -> None:
        self.db.execute(
            "UPDATE runs SET finished=?, cells_computed=?, cells_reused=?, status=? WHERE run_id=?",
            (time.time(), computed, reused, status, run_id),
        )
        self.db.commit()

    def run(self, run_id: int) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([c[0] for c in cur.description], row, strict=True))
        out["versions"] = json.loads(out["versions"] or "{}")
        out["overrides"] = json.loads(out["overrides"] or "{}")
        out["machine"] = json.loads(out["machine"] or "{}")  # bench.provenance.machine(); {} before it existed
        out["plan"] = json.loads(out["plan"]) if out.get("plan") else None
        return out

    # cells --------------------------------------------------------------
    def has(self, cell_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM cells WHERE cell_id=?", (cell_id,)).fetchone() is not None

    def get(self, cell_id: str) -> CellResult | None:
        row = self.db.execute(
            "SELECT cell_id, kind, key, metrics, duration_s, device, run_id FROM cells WHERE cell_id=?", (cell_id,)
        ).fetchone()
        if row is None:
            return None
        return CellResult(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5], row[6])

    def put(
        self,
        cell_id: str,
        kind: str,
        key: dict[str, Any],
        metrics: dict[str, Any],
        duration_s: float,
        device: str | None,
        run_id: int | None,
        predictions: Predictions | None = None,
        **descriptor: Any,
    ) -> None:
        """Write one cell and its predictions in one transaction (replacing an earlier result).

        `key` is the cell's descriptor as JSON; `descriptor` fills the typed columns (DESCRIPTOR_COLUMNS)."""
        unknown = set(descriptor) - set(DESCRIPTOR_COLUMNS)
        if unknown:
            raise ValueError(f"unknown descriptor columns {sorted(unknown)}")
        typed = [descriptor.get(c) for c in DESCRIPTOR_COLUMNS]
        typed[DESCRIPTOR_COLUMNS.index("params")] = (
            None if descriptor.get("params") is None else json.dumps(descriptor["params"], sort_keys=True))
        adaptive = descriptor.get("adaptive")
        typed[DESCRIPTOR_COLUMNS.index("adaptive")] = None if adaptive is None else int(bool(adaptive))
        cols = ("cell_id", "kind", "key", "metrics", "duration_s", "device", "run_id", "created", *DESCRIPTOR_COLUMNS)
        with self.db:
            self.db.execute("DELETE FROM predictions WHERE cell_id=?", (cell_id,))
            self.db.execute("DELETE FROM cells WHERE cell_id=?", (cell_id,))
            self.db.execute(
                f"INSERT INTO cells ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                (cell_id, kind, json.dumps(key, sort_keys=True), json.dumps(metrics, sort_keys=True),
                 float(duration_s), device, run_id, time.time(), *typed),
            )
            if predictions is not None:
                ids, labels, p_real = predictions[:3]
                n = len(ids)
                norms = [*predictions[3:], None, None]  # a clean cell records no norms
                l2, l2_before = _optional(norms[0], n), _optional(norms[1], n)
                self.db.executemany(
                    "INSERT INTO predictions (cell_id, image_id, label, p_real, l2, l2_before) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(cell_id, i, int(label), float(p), a, b)
                     for i, label, p, a, b in zip(ids, labels, p_real, l2, l2_before, strict=True)],
                )

    def rows(self, cell_ids: list[str]) -> list[dict[str, Any]]:
        """The stored rows of these cells (those that exist), typed columns as stored, in the given order:
        cell_id, kind, descriptor (the cell's `key` JSON), metrics, duration_s, device, run_id, created and
        DESCRIPTOR_COLUMNS (params decoded)."""
        cols = ("cell_id", "kind", "key", "metrics", "duration_s", "device", "run_id", "created", *DESCRIPTOR_COLUMNS)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(cell_ids), 500):
            chunk = cell_ids[i : i + 500]
            cur = self.db.execute(f"SELECT {', '.join(cols)} FROM cells WHERE cell_id IN "
                                  f"({', '.join('?' * len(chunk))})", chunk)
            for row in cur:
                d = dict(zip(cols, row, strict=True))
                d["descriptor"] = json.loads(d.pop("key"))
                d["metrics"] = json.loads(d["metrics"])
                d["params"] = json.loads(d["params"]) if d["params"] else None
                d["adaptive"] = None if d["adaptive"] is None else bool(d["adaptive"])
                found[d["cell_id"]] = d
        return [found[c] for c in cell_ids if c in found]

    def predictions(self, cell_id: str) -> dict[str, tuple[int, float]]:
        rows = self.db.execute("SELECT image_id, label, p_real FROM predictions WHERE cell_id=?", (cell_id,))
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    def predictions_with_norms(self, cell_id: str) -> dict[str, tuple[int, float, float | None, float | None]]:
        """image id -> (label, P(real), L2 after storage, L2 before storage); a norm is None where the cell
        recorded none (not an attack cell, or stored before the norms were recorded)."""
        rows = self.db.execute("SELECT image_id, label, p_real, l2, l2_before FROM predictions WHERE cell_id=?",
                               (cell_id,))
        return {r[0]: (int(r[1]), float(r[2]), r[3], r[4]) for r in rows}

    def merge_from(self, other: Path | str) -> tuple[int, int]:
        """Copy every run, cell and prediction of another store (e.g. one shard's) into this one.

        Returns (cells copied, runs copied). A cell present in both is replaced by the other's copy.
        """
        con = self.db
        con.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with con:
                run_cols = _shared_columns(con, "runs")
                run_cols.remove("run_id")
                runs = con.execute(f"SELECT run_id, {', '.join(run_cols)} FROM other.runs ORDER BY run_id").fetchall()
                mapping = {}
                for row in runs:
                    cur = con.execute(f"INSERT INTO runs ({', '.join(run_cols)}) VALUES "
                                      f"({', '.join('?' * len(run_cols))})", row[1:])
                    mapping[row[0]] = cur.lastrowid
                cell_cols = _shared_columns(con, "cells")
                cells = con.execute(f"SELECT {', '.join(cell_cols)} FROM other.cells").fetchall()
                at = cell_cols.index("run_id")
                for row in cells:
                    con.execute("DELETE FROM predictions WHERE cell_id=?", (row[0],))
                    values = (*row[:at], mapping.get(row[at]), *row[at + 1 :])
                    con.execute(f"INSERT OR REPLACE INTO cells ({', '.join(cell_cols)}) VALUES "
                                f"({', '.join('?' * len(cell_cols))})", values)
                pred_cols = ", ".join(_shared_columns(con, "predictions"))  # an older shard lacks the norms
                con.execute(f"INSERT OR REPLACE INTO predictions ({pred_cols}) "
                            f"SELECT {pred_cols} FROM other.predictions")
        finally:
            con.execute("DETACH DATABASE other")
        return len(cells), len(runs)

    def latest_run(self, suite: str, profile: str | None, with_plan: bool = False) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE suite=? AND profile IS ? AND status='finished'"
            + (" AND plan IS NOT NULL" if with_plan else "") + " ORDER BY run_id DESC LIMIT 1",
            (suite, profile),
        ).fetchone()
        return self.run(row[0]) if row else None

    def computed_by(self, cell_ids: list[str]) -> list[dict[str, Any]]:
        """Which commits computed these cells: per git commit of the cells' runs (None: not recorded), the number
        of cells and when the first and last of them were stored; most cells first."""
        counts: dict[str | None, list] = {}
        ids = list(dict.fromkeys(cell_ids))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for commit, n, first, last in self.db.execute(
                    "SELECT r.git_commit, COUNT(*), MIN(c.created), MAX(c.created) FROM cells c "
                    "LEFT JOIN runs r ON c.run_id = r.run_id WHERE c.cell_id IN "
                    f"({','.join('?' * len(part))}) GROUP BY r.git_commit", part):
                have = counts.setdefault(commit, [0, first, last])
                have[0] += n
                have[1], have[2] = min(have[1], first), max(have[2], last)
        out = [{"commit": c, "cells": n, "first": f, "last": la} for c, (n, f, la) in counts.items()]
        return sorted(out, key=lambda d: -d["cells"])


def _optional(values: np.ndarray | None, n: int) -> list[float | None]:
    """Per-image values as stored: a float, or None (NULL) where absent or not finite."""
    if values is None:
        return [None] * n
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def _shared_columns(con: sqlite3.Connection, table: str) -> list[str]:
    """Columns of `table` in both the main and the attached `other` database, in main's order."""
    other = {r[1] for r in con.execute(f"PRAGMA other.table_info({table})")}
    return [r[1] for r in con.execute(f"PRAGMA main.table_info({table})") if r[1] in other]
