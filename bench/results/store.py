"""The results store: SQLite (stdlib), one row per finished cell, per-image predictions beside it.

A cell is named by a hash of everything that determines its result, so a rerun finds it and
skips it; each cell is committed on its own, so an interrupted run loses at most the cell in flight.
Every cell row describes itself in typed columns (kind, model, defense, attack and its parameters,
threat model, source and target, adaptive or not, data digest, suite and profile); every run stores
its plan, so reports and exports need nothing but this file (see `bench.results`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from bench.errors import BenchError
from bench.results.integrity import (
    PREDICTION_DIGEST_COLUMNS,
    StoreDamaged,
    cell_digest,
    check_database,
    damaged_cell,
    damaged_database,
    is_damage,
    result_digest,
    run_seal,
)

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
_ADDED_COLUMNS = {"runs": {"plan": "TEXT", "pid": "INTEGER", "host": "TEXT", "machine": "TEXT", "seal": "TEXT"},
                  "cells": {**{c: ("INTEGER" if c in ("adaptive", "seed") else "TEXT") for c in DESCRIPTOR_COLUMNS},
                            "files": "TEXT", "digest": "TEXT"},
                  "predictions": {c: "REAL" for c in NORM_COLUMNS}}
# `files`: what the cell wrote under the home ({role: {path, sha256, bytes}}, bench.cells.artifacts); `digest`: the
# SHA-256 of the row's content (bench.results.integrity.cell_digest); a run's `seal`: its row's and its cells' digests.

# A cell's per-image predictions: (image ids, labels, P(real)), and for an attack cell also its per-image
# L2 after and before storage (arrays, NaN where unknown).
Predictions = (tuple[list[str], np.ndarray, np.ndarray]
               | tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None])


class MergeConflict(BenchError):
    """Two stores hold one cell with different results."""


@dataclass
class CellResult:
    cell_id: str
    kind: str
    key: dict[str, Any]
    metrics: dict[str, Any]
    duration_s: float
    device: str | None
    run_id: int | None
    files: dict[str, Any] | None = None


class ResultStore:
    """A thin layer over one SQLite file, checked when opened (`bench.results.integrity`).

    `readonly=True` (reports, exports): the file must exist, nothing is ever written to it or beside it (a
    store made by an older version is upgraded in memory), and it may sit in a read-only folder."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise BenchError(str(self.path), "is a folder, not a results database file (--db names a file)")
        self.db = self._open_readonly() if readonly else self._open_for_writing()

    def _open_for_writing(self) -> sqlite3.Connection:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = _connect(str(self.path), timeout=60)
        try:
            if not check_database(self.db, self.path) and not new:
                new = True  # an SQLite file without any table: nothing to lose
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if new:
                self.db.executescript(SCHEMA)
            self._migrate()
            self.db.commit()
        except BaseException:
            self.db.close()
            raise
        return self.db

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise BenchError(str(self.path), "no results database here: run `bench run` first (or name the store "
                                             "with --home or --db)")
        uri = "file:" + quote(str(self.path.absolute()))
        with open(self.path, "rb") as fh:
            header = fh.read(20)
        settled = header[18:20] == b"\x02\x02" and not Path(f"{self.path}-wal").exists()
        # a WAL store with no log beside it (no run holds it open): read as is, creating no -shm/-wal files
        con = _connect(uri + ("?immutable=1" if settled else "?mode=ro"), uri=True, timeout=60)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:  # a WAL store in a read-only folder: no shared-memory file
            if is_damage(exc):
                con.close()
                raise damaged_database(self.path, str(exc)) from None
            con.close()
            con = _connect(uri + "?immutable=1", uri=True)
        except sqlite3.DatabaseError as exc:
            con.close()
            raise damaged_database(self.path, str(exc)) from None
        self.db = con
        try:
            if not check_database(con, self.path):
                raise BenchError(str(self.path), "holds no results (no tables): run `bench run` first")
            if self._missing_columns():  # made by an older version: upgrade a copy in memory, never the file
                mem = _connect(":memory:")
                con.backup(mem)
                con.close()
                self.db = mem
                self._migrate()
        except BaseException:
            self.db.close()
            raise
        return self.db

    def _missing_columns(self) -> list[tuple[str, str, str]]:
        out = []
        for table, cols in _ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            out += [(table, col, typ) for col, typ in cols.items() if col not in have]
        return out

    def _migrate(self) -> None:
        """Add the columns a store made by an older version lacks (their values stay NULL)."""
        for table, col, typ in self._missing_columns():
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

    def finish_run(self, run_id: int, computed: int, reused: int, status: str = "finished",
                   cells: list[str] | None = None) -> None:
        """Record how a run ended; a finished run is sealed with the digests of `cells` (those stored)."""
        with self.db:
            self.db.execute(
                "UPDATE runs SET finished=?, cells_computed=?, cells_reused=?, status=? WHERE run_id=?",
                (time.time(), computed, reused, status, run_id),
            )
            if status == "finished" and cells is not None:
                stored = self._digests(cells)
                ids = [c for c in cells if c in stored]
                seal = run_seal(self._run_row(run_id), [(c, stored[c]) for c in ids])
                self.db.execute("UPDATE runs SET seal=? WHERE run_id=?", (json.dumps({"ids": ids, "sha256": seal}),
                                                                          run_id))

    def _run_row(self, run_id: int) -> dict[str, Any]:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        return {} if row is None else dict(zip([c[0] for c in cur.description], row, strict=True))

    def _digests(self, cell_ids: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for i in range(0, len(cell_ids), 500):
            chunk = cell_ids[i : i + 500]
            out.update(self.db.execute(f"SELECT cell_id, digest FROM cells WHERE cell_id IN "
                                       f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def _verify_seal(self, row: dict[str, Any]) -> None:
        """Raise `StoreDamaged` if a sealed run's row or one of its cells changed after it finished."""
        if not row.get("seal"):
            return  # a run that did not finish, or one stored before runs were sealed
        tag = f"run {row['run_id']} of suite {row.get('suite')}"
        try:
            seal = json.loads(row["seal"])
            ids, want = list(seal["ids"]), str(seal["sha256"])
            if not all(isinstance(c, str) and _CELL_KEY.fullmatch(c) for c in ids):
                raise ValueError("a cell key that is not one")
        except (ValueError, TypeError, KeyError):
            raise damaged_database(self.path, f"{tag}: its seal does not decode") from None
        stored = self._digests(ids)
        gone = next((c for c in ids if c not in stored), None)
        if gone is not None:
            raise StoreDamaged(str(self.path), f"cell {gone[:16]} of {tag} is missing; rerun `bench run` to "
                                               f"recompute it (or restore the store from a backup)")
        if run_seal(row, [(c, stored[c]) for c in ids]) != want:
            raise StoreDamaged(str(self.path), f"{tag} changed after it finished (its row or a cell's digest); rerun "
                                               "`bench run` to recompute what is damaged (or restore the store from "
                                               "a backup)")

    def run(self, run_id: int) -> dict[str, Any] | None:
        """A run's row with its JSON decoded; a sealed run is verified first (`StoreDamaged` if it changed)."""
        out = self._run_row(run_id)
        if not out:
            return None
        self._verify_seal(out)
        try:
            out["versions"] = json.loads(out["versions"] or "{}")
            out["overrides"] = json.loads(out["overrides"] or "{}")
            out["machine"] = json.loads(out["machine"] or "{}")  # provenance.machine(); {} before it existed
            out["plan"] = json.loads(out["plan"]) if out.get("plan") else None
        except (ValueError, TypeError) as exc:
            raise damaged_database(self.path, f"run {run_id}: a column does not decode as JSON ({exc})") from None
        return out

    # cells --------------------------------------------------------------
    def has(self, cell_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM cells WHERE cell_id=?", (cell_id,)).fetchone() is not None

    def get(self, cell_id: str) -> CellResult | None:
        """A stored cell, verified against its digest (`StoreDamaged` naming the cell if it does not match)."""
        row = self.db.execute(
            "SELECT cell_id, kind, key, metrics, duration_s, device, run_id, files, digest FROM cells WHERE cell_id=?",
            (cell_id,)).fetchone()
        if row is None:
            return None
        self._verify_cell(row[0], row[1], row[2], row[3], row[7], row[8])
        try:
            files = json.loads(row[7]) if row[7] is not None else None
            return CellResult(row[0], row[1], _object(row[2]), _object(row[3]), float(row[4]), row[5], row[6],
                              files)
        except (ValueError, TypeError) as exc:
            raise damaged_cell(self.path, cell_id, f"it does not decode: {exc}") from None

    def _verify_cell(self, cell_id: str, kind: Any, key: Any, metrics: Any, files: Any, want: Any) -> None:
        if want is None:
            return  # stored before rows carried digests
        if not all(isinstance(v, str) for v in (kind, key, metrics, want)) or not isinstance(files, (str, type(None))):
            raise damaged_cell(self.path, cell_id, "a column holds a value of the wrong type")
        preds = self.db.execute(f"SELECT {', '.join(PREDICTION_DIGEST_COLUMNS)} FROM predictions WHERE cell_id=?",
                                (cell_id,)).fetchall()
        try:
            have = cell_digest(kind, key, metrics, files, preds)
        except (ValueError, TypeError):
            raise damaged_cell(self.path, cell_id, "a prediction holds a value of the wrong type") from None
        if have != want:
            raise damaged_cell(self.path, cell_id, "its content no longer matches the digest stored with it")

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
        files: dict[str, Any] | None = None,
        **descriptor: Any,
    ) -> None:
        """Write one cell and its predictions in one transaction (replacing an earlier result), with the digest
        of its content (`bench.results.integrity.cell_digest`).

        `key` is the cell's descriptor as JSON; `descriptor` fills the typed columns (DESCRIPTOR_COLUMNS); `files`
        what the cell wrote under the home, with their digests (`bench.cells.artifacts`)."""
        unknown = set(descriptor) - set(DESCRIPTOR_COLUMNS)
        if unknown:
            raise ValueError(f"unknown descriptor columns {sorted(unknown)}")
        typed = [descriptor.get(c) for c in DESCRIPTOR_COLUMNS]
        typed[DESCRIPTOR_COLUMNS.index("params")] = (
            None if descriptor.get("params") is None else json.dumps(descriptor["params"], sort_keys=True))
        adaptive = descriptor.get("adaptive")
        typed[DESCRIPTOR_COLUMNS.index("adaptive")] = None if adaptive is None else int(bool(adaptive))
        cols = ("cell_id", "kind", "key", "metrics", "duration_s", "device", "run_id", "created", "files", "digest",
                *DESCRIPTOR_COLUMNS)
        key_text, metrics_text = json.dumps(key, sort_keys=True), json.dumps(metrics, sort_keys=True)
        files_text = None if files is None else json.dumps(files, sort_keys=True)
        rows = []
        if predictions is not None:
            ids, labels, p_real = predictions[:3]
            norms = [*predictions[3:], None, None]  # a clean cell records no norms
            l2, l2_before = _optional(norms[0], len(ids)), _optional(norms[1], len(ids))
            rows = [(str(i), int(label), float(p), a, b)
                    for i, label, p, a, b in zip(ids, labels, p_real, l2, l2_before, strict=True)]
        digest = cell_digest(kind, key_text, metrics_text, files_text, rows)
        try:
            self._write_cell(cell_id, cols, (cell_id, kind, key_text, metrics_text, float(duration_s), device, run_id,
                                             time.time(), files_text, digest, *typed), rows)
        except sqlite3.IntegrityError as exc:
            # rows the delete did not find, yet the unique index has: a damaged index, which quick_check passes
            raise damaged_database(self.path, f"{exc}: its index no longer matches its rows") from None

    def _write_cell(self, cell_id: str, cols: tuple[str, ...], values: tuple, rows: list[tuple]) -> None:
        """Replace one cell's row and its predictions, in one transaction."""
        with self.db:
            self.db.execute("DELETE FROM predictions WHERE cell_id=?", (cell_id,))
            self.db.execute("DELETE FROM cells WHERE cell_id=?", (cell_id,))
            self.db.execute(f"INSERT INTO cells ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)
            if rows:
                self.db.executemany(
                    f"INSERT INTO predictions (cell_id, {', '.join(PREDICTION_DIGEST_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * (1 + len(PREDICTION_DIGEST_COLUMNS)))})",
                    [(cell_id, *r) for r in rows],
                )

    def rows(self, cell_ids: list[str]) -> list[dict[str, Any]]:
        """The stored rows of these cells (those that exist), typed columns as stored, in the given order:
        cell_id, kind, descriptor (the cell's `key` JSON), metrics, duration_s, device, run_id, created and
        DESCRIPTOR_COLUMNS (params decoded)."""
        cols = ("cell_id", "kind", "key", "metrics", "duration_s", "device", "run_id", "created", "files", "digest",
                *DESCRIPTOR_COLUMNS)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(cell_ids), 500):
            chunk = cell_ids[i : i + 500]
            cur = self.db.execute(f"SELECT {', '.join(cols)} FROM cells WHERE cell_id IN "
                                  f"({', '.join('?' * len(chunk))})", chunk)
            for row in cur.fetchall():
                d = dict(zip(cols, row, strict=True))
                self._verify_cell(d["cell_id"], d["kind"], d["key"], d["metrics"], d["files"], d.pop("digest"))
                try:
                    d["descriptor"] = _object(d.pop("key"))
                    d["metrics"] = _object(d["metrics"])
                    d["files"] = json.loads(d["files"]) if d["files"] is not None else None
                    d["params"] = json.loads(d["params"]) if d["params"] else None
                except (ValueError, TypeError) as exc:
                    raise damaged_cell(self.path, str(d["cell_id"]), f"it does not decode: {exc}") from None
                d["adaptive"] = None if d["adaptive"] is None else bool(d["adaptive"])
                found[d["cell_id"]] = d
        return [found[c] for c in cell_ids if c in found]

    def predictions(self, cell_id: str) -> dict[str, tuple[int, float]]:
        rows = self.db.execute("SELECT image_id, label, p_real FROM predictions WHERE cell_id=?", (cell_id,))
        try:
            return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}
        except (ValueError, TypeError):
            raise damaged_cell(self.path, cell_id, "a prediction holds a value of the wrong type") from None

    def predictions_with_norms(self, cell_id: str) -> dict[str, tuple[int, float, float | None, float | None]]:
        """image id -> (label, P(real), L2 after storage, L2 before storage); a norm is None where the cell
        recorded none (not an attack cell, or stored before the norms were recorded)."""
        rows = self.db.execute("SELECT image_id, label, p_real, l2, l2_before FROM predictions WHERE cell_id=?",
                               (cell_id,))
        return {r[0]: (int(r[1]), float(r[2]), r[3], r[4]) for r in rows}

    def merge_from(self, other: Path | str, origin: dict[str, str] | None = None,
                   label: str | None = None) -> tuple[int, int]:
        """Copy every run, cell and prediction of another store (e.g. one shard's) into this one, in one
        transaction. Returns (cells copied, runs copied).

        A cell present in both is kept as it is when both computed the same result (`result_digest`: where
        its files are and how long it took may differ); a different result raises `MergeConflict` naming the
        cell and both stores (`origin` maps a cell to the store it came from, `label` names `other`). A run
        already present (same suite, profile, start, pid and host) is not copied again; a copied run that was
        sealed is sealed again here, against the cells as this store holds them."""
        origin = origin if origin is not None else {}
        label = label or str(other)
        con = self.db
        con.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with con:
                run_cols = _shared_columns(con, "runs")
                run_cols.remove("run_id")
                have = {tuple(r) for r in con.execute("SELECT suite, profile, started, pid, host FROM main.runs")}
                at = {c: i for i, c in enumerate(run_cols)}
                mapping, copied_runs = {}, []
                for row in con.execute(f"SELECT run_id, {', '.join(run_cols)} FROM other.runs ORDER BY run_id"
                                       ).fetchall():
                    values = row[1:]
                    ident = tuple(values[at[c]] if c in at else None for c in ("suite", "profile", "started", "pid",
                                                                               "host"))
                    if ident in have:
                        continue
                    cur = con.execute(f"INSERT INTO runs ({', '.join(run_cols)}) VALUES "
                                      f"({', '.join('?' * len(run_cols))})", values)
                    mapping[row[0]] = cur.lastrowid
                    copied_runs.append(cur.lastrowid)
                cell_cols = _shared_columns(con, "cells")
                pred_cols = ", ".join(_shared_columns(con, "predictions"))
                at_run = cell_cols.index("run_id")
                copied = 0
                for row in con.execute(f"SELECT {', '.join(cell_cols)} FROM other.cells").fetchall():
                    cell_id = row[0]
                    mine = con.execute("SELECT kind, key, metrics, files FROM main.cells WHERE cell_id=?",
                                       (cell_id,)).fetchone()
                    if mine is not None:
                        theirs = con.execute("SELECT kind, key, metrics, files FROM other.cells WHERE cell_id=?",
                                             (cell_id,)).fetchone()
                        if self._result(con, "main", cell_id, mine) != self._result(con, "other", cell_id, theirs):
                            raise MergeConflict(label, f"cell {cell_id[:16]} ({mine[0]}) holds another result in "
                                                       f"{origin.get(cell_id, self.path)}; refusing to merge (nothing "
                                                       "was written): keep one of the two stores, or rerun that cell "
                                                       "on one machine")
                        continue
                    values = (*row[:at_run], mapping.get(row[at_run]), *row[at_run + 1 :])
                    con.execute(f"INSERT INTO cells ({', '.join(cell_cols)}) VALUES "
                                f"({', '.join('?' * len(cell_cols))})", values)
                    con.execute(f"INSERT INTO predictions ({pred_cols}) SELECT {pred_cols} FROM other.predictions "
                                "WHERE cell_id=?", (cell_id,))
                    origin[cell_id] = label
                    copied += 1
                for run_id in copied_runs:
                    self._reseal(run_id)
        finally:
            con.execute("DETACH DATABASE other")
        return copied, len(copied_runs)

    @staticmethod
    def _result(con: sqlite3.Connection, db: str, cell_id: str, row: tuple) -> str:
        preds = con.execute(f"SELECT {', '.join(PREDICTION_DIGEST_COLUMNS)} FROM {db}.predictions WHERE cell_id=?",
                            (cell_id,)).fetchall()
        return result_digest(row[0], row[1], row[2], row[3], preds)

    def _reseal(self, run_id: int) -> None:
        row = self._run_row(run_id)
        if not row.get("seal"):
            return
        ids = list(json.loads(row["seal"])["ids"])
        stored = self._digests(ids)
        ids = [c for c in ids if c in stored]
        seal = run_seal(row, [(c, stored[c]) for c in ids])
        self.db.execute("UPDATE runs SET seal=? WHERE run_id=?", (json.dumps({"ids": ids, "sha256": seal}), run_id))

    def verify_all(self) -> int:
        """Read every cell and every run (each verified, `StoreDamaged` at the first that is not); the number of
        cells. For a merge's sources, which are copied whole."""
        ids = [r[0] for r in self.db.execute("SELECT cell_id FROM cells").fetchall()]
        for cell_id in ids:
            self.get(cell_id)
            self.predictions(cell_id)
        for (run_id,) in self.db.execute("SELECT run_id FROM runs").fetchall():
            self.run(run_id)
        return len(ids)

    def latest_run(self, suite: str, profile: str | None, with_plan: bool = False) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE suite=? AND profile IS ? AND status='finished'"
            + (" AND plan IS NOT NULL" if with_plan else "") + " ORDER BY run_id DESC LIMIT 1",
            (suite, profile),
        ).fetchone()
        return self.run(row[0]) if row else None

    def computing_runs(self, cell_ids: list[str]) -> list[tuple[int | None, int]]:
        """The runs that computed these cells and how many each computed, most first (None: cells stored without
        a run)."""
        counts: dict[int | None, int] = {}
        ids = list(dict.fromkeys(cell_ids))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for run_id, n in self.db.execute(
                    f"SELECT run_id, COUNT(*) FROM cells WHERE cell_id IN ({','.join('?' * len(part))}) "
                    "GROUP BY run_id", part):
                counts[run_id] = counts.get(run_id, 0) + n
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or 0))

    def run_machine(self, run_id: int) -> dict[str, Any] | None:
        """A run's machine and device as recorded (`bench.results.provenance.machine`), read without verifying the run's
        seal: a later run may have recomputed some of its cells, which changes the seal, not the machine."""
        row = self.db.execute("SELECT machine, device FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        try:
            return {"machine": json.loads(row[0] or "{}"), "device": row[1]}
        except (ValueError, TypeError) as exc:
            raise damaged_database(self.path, f"run {run_id}: its machine does not decode as JSON ({exc})") from None

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


_CELL_KEY = re.compile(r"[0-9a-f]{64}")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _connect(database: str, **kw: Any) -> sqlite3.Connection:
    """A connection that reads damaged bytes in any text (a value, a table's name in the schema) as a string that
    fails its check (a digest mismatch, a missing table), never as a decoding crash."""
    con = sqlite3.connect(database, **kw)
    con.text_factory = _text
    return con


def _object(text: Any) -> dict[str, Any]:
    """A JSON object stored as text (ValueError if it is not one)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _shared_columns(con: sqlite3.Connection, table: str) -> list[str]:
    """Columns of `table` in both the main and the attached `other` database, in main's order."""
    other = {r[1] for r in con.execute(f"PRAGMA other.table_info({table})")}
    return [r[1] for r in con.execute(f"PRAGMA main.table_info({table})") if r[1] in other]
