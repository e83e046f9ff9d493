"""The results store: SQLite (stdlib), one row per finished cell, per-image predictions beside it.

A cell is named by a hash of everything that determines its result, so a rerun finds it and
skips it; each cell is committed on its own, so an interrupted run loses at most the cell in flight.
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
    cells_computed INTEGER DEFAULT 0, cells_reused INTEGER DEFAULT 0, status TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    metrics TEXT NOT NULL,
    duration_s REAL NOT NULL,
    device TEXT,
    run_id INTEGER REFERENCES runs(run_id),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id) ON DELETE CASCADE,
    image_id TEXT NOT NULL,
    label INTEGER NOT NULL,
    p_real REAL NOT NULL,
    PRIMARY KEY (cell_id, image_id)
);
"""


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
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    # runs ---------------------------------------------------------------
    def start_run(self, suite: str, profile: str | None, **prov: Any) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (suite, profile, started, git_commit, versions, seed, device, overrides, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            (suite, profile, time.time(), prov.get("git_commit"), json.dumps(prov.get("versions", {})),
             prov.get("seed"), prov.get("device"), json.dumps(prov.get("overrides", {}))),
        )
        self.db.commit()
        return int(cur.lastrowid)

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
        predictions: tuple[list[str], np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Write one cell and its predictions in one transaction (replacing an earlier result)."""
        with self.db:
            self.db.execute("DELETE FROM predictions WHERE cell_id=?", (cell_id,))
            self.db.execute("DELETE FROM cells WHERE cell_id=?", (cell_id,))
            self.db.execute(
                "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cell_id, kind, json.dumps(key, sort_keys=True), json.dumps(metrics, sort_keys=True),
                 float(duration_s), device, run_id, time.time()),
            )
            if predictions is not None:
                ids, labels, p_real = predictions
                self.db.executemany(
                    "INSERT INTO predictions VALUES (?, ?, ?, ?)",
                    [(cell_id, i, int(label), float(p)) for i, label, p in zip(ids, labels, p_real, strict=True)],
                )

    def predictions(self, cell_id: str) -> dict[str, tuple[int, float]]:
        rows = self.db.execute("SELECT image_id, label, p_real FROM predictions WHERE cell_id=?", (cell_id,))
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    def merge_from(self, other: Path | str) -> tuple[int, int]:
        """Copy every run, cell and prediction of another store (e.g. one shard's) into this one.

        Returns (cells copied, runs copied). A cell present in both is replaced by the other's copy.
        """
        con = self.db
        con.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with con:
                runs = con.execute(  # named columns: bench.runs adds pid and host to the table
                    "SELECT run_id, suite, profile, started, finished, git_commit, versions, seed, device, overrides,"
                    " cells_computed, cells_reused, status FROM other.runs ORDER BY run_id").fetchall()
                mapping = {}
                for row in runs:
                    cur = con.execute(
                        "INSERT INTO runs (suite, profile, started, finished, git_commit, versions, seed, device,"
                        " overrides, cells_computed, cells_reused, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row[1:])
                    mapping[row[0]] = cur.lastrowid
                cells = con.execute("SELECT * FROM other.cells").fetchall()
                for row in cells:
                    con.execute("DELETE FROM predictions WHERE cell_id=?", (row[0],))
                    con.execute("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?)",
                                (*row[:6], mapping.get(row[6]), row[7]))
                con.execute("INSERT OR REPLACE INTO predictions SELECT * FROM other.predictions")
        finally:
            con.execute("DETACH DATABASE other")
        return len(cells), len(runs)

    def latest_run(self, suite: str, profile: str | None) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE suite=? AND profile IS ? AND status='finished' ORDER BY run_id DESC LIMIT 1",
            (suite, profile),
        ).fetchone()
        return self.run(row[0]) if row else None
