"""Exports of a suite's stored results, for analysis outside the harness.

`export(results, fmt, out)` writes one row per cell of the plan (every kind: model, clean, gradnorm, craft,
attack, and section cells) with its typed descriptor columns and its metrics flattened to columns
(`accuracy.value`, `accuracy.lo`, ...), as CSV, JSON (records) or Parquet; optionally the per-image
predictions beside it; and, RobustBench-style, one JSON record per evaluated model (clean accuracy and
robust accuracy per attack and threat model, each with n and its 95% interval).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.results.atomic import atomic_write, atomic_write_text
from bench.results.query import Results
from bench.results.records import AttackMetrics, CleanMetrics
from bench.results.store import DESCRIPTOR_COLUMNS
from bench.suite.replicas import replica_columns

FORMATS = ("csv", "json", "parquet")


def cell_frame(results: Results) -> pd.DataFrame:
    """One row per cell of the plan, stored or not (`stored` says which): the store's typed columns, the
    cell's label, and its metrics flattened to columns."""
    plan = results.plan
    cells = plan.cells()
    stored = {r["cell_id"]: r for r in results.store.rows([c.key for c in cells])}
    rows = []
    for cell in cells:
        r = stored.get(cell.key)
        d = {**cell.describe(), **replica_columns(plan, cell.describe().get("model")), "data_digest": plan.data_key}
        row: dict[str, Any] = {"suite": results.ls.suite.name, "profile": results.ls.profile, "kind": cell.kind,
                               "cell_key": cell.key, "stored": r is not None, "label": d.get("label"),
                               "storage_aware": d.get("storage_aware")}
        if r is None:  # not computed yet: what the plan says it will be
            row.update({k: d.get(k) for k in DESCRIPTOR_COLUMNS if k not in ("suite", "profile")})
        else:
            # a row stored before the typed columns existed has them NULL: the plan says what they are
            row.update({k: r[k] if r[k] is not None else d.get(k)
                        for k in DESCRIPTOR_COLUMNS if k not in ("suite", "profile")})
            row.update({"duration_s": r["duration_s"], "device": r["device"]})
            row.update({f"metrics.{k}": v for k, v in _flatten(r["metrics"]).items()})
        row["params"] = json.dumps(row["params"], sort_keys=True) if row.get("params") is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{name}."))
        elif isinstance(v, list):
            out[name] = json.dumps(v)
        else:
            out[name] = v
    return out


def prediction_frame(results: Results) -> pd.DataFrame:
    """Per-image predictions of every stored clean and attack cell."""
    keys = [c.key for c in results.plan.cells() if c.kind in ("clean", "attack")]
    return results.predictions(keys)


def model_records(results: Results) -> list[dict[str, Any]]:
    """RobustBench-style: one record per evaluated model (variant), clean and robust accuracy per threat."""
    out = []
    attacks = results.attacks.to_dict("records") if len(results.attacks) else []
    for v in results.variants.to_dict("records"):
        m = CleanMetrics.of(v["metrics"])
        robust = []
        for r in attacks:
            a = AttackMetrics.of(r["metrics"]) if r["target"] == v["name"] else None
            if a is None:
                continue
            robust.append({"attack": r["attack"], "attack_key": r["attack_key"], "label": r["label"],
                           "backend": r["backend"], "params": r["params"], "family": r["family"],
                           "norm": r["norm"], "threat_model": r["threat"], "source": r["source"],
                           "adaptive": bool(r["adaptive"]), "robust_accuracy": a.accuracy})
        out.append({"suite": results.ls.suite.name, "profile": results.ls.profile, "model": v["name"],
                    "label": v["label"], "base_model": v["model"], "defense": v["defense"],
                    "data_digest": results.plan.data_key,
                    "clean_accuracy": m.accuracy if m else None, "auroc": m.auroc if m else None,
                    "robust": robust})
    return out


def export(results: Results, fmt: str, out: Path, predictions: bool = False) -> list[Path]:
    """Write the cell table (`out`), optionally predictions (`<out stem>-predictions.<fmt>`), and the
    per-model records (`<out stem>-models.json`); returns the paths written."""
    if fmt not in FORMATS:
        raise BenchError("--format", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [_write(cell_frame(results), fmt, out)]
    if predictions:
        written.append(_write(prediction_frame(results), fmt, out.with_name(f"{out.stem}-predictions.{fmt}")))
    models = out.with_name(f"{out.stem}-models.json")
    atomic_write_text(models, json.dumps(_clean_nan(model_records(results)), indent=1))
    return [*written, models]


def _clean_nan(obj: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_nan(v) for v in obj]
    return obj


def _write(frame: pd.DataFrame, fmt: str, path: Path) -> Path:
    if fmt == "csv":
        data = frame.to_csv(index=False).encode("utf-8")
    elif fmt == "json":
        data = frame.to_json(orient="records", indent=1).encode("utf-8")
    else:
        try:
            import pyarrow  # noqa: F401  (lazy: an optional dependency, only Parquet needs it)
        except ImportError:
            raise BenchError("--format", "parquet needs pyarrow: pip install -e '.[export]'") from None
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        data = buf.getvalue()
    atomic_write(path, lambda fh: fh.write(data))
    return path
