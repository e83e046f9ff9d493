"""Results are data: `bench report` and `bench export` work from the store alone, after the data folder,
the checkpoints and the adversarial examples are gone."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.results.query import load_results
from bench.results.store import ResultStore

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

SUITE = """
name: small
seed: 3
data: {{source: folder, path: {data}, size: 32}}
models:
  a: {{arch: tiny, recipe: {{epochs: 2, lr: 0.05, batch_size: 16}}}}
  b: {{arch: tiny, recipe: {{epochs: 2, lr: 0.03, batch_size: 16}}}}
attacks:
  fgsm: {{attack: fgsm, backend: native, eps: [0.01, 0.03], table: {{eps: 0.03}}}}
threat_models: {{white_box: true, transfer: [[a, b]]}}
# no controls or check attacks: these tests count the suite's own cells (tests/test_controls.py covers them)
evaluation: {{max_attack_images: 12, attack_batch_size: 12, gradient_norm_images: 8, controls: false,
             checks: {{unbounded: null, convergence: null}}}}
report: {{figures: false}}
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("data-gone")
    data = base / "images"
    assert main(["data", "synth", "--out", str(data), "--n", "96", "--size", "32", "--seed", "1"]) == 0
    suite = base / "small.yaml"
    suite.write_text(SUITE.format(data="images"))
    home = base / "home"
    assert main(["run", str(suite), "--home", str(home), "--out", str(base / "lb"), "--quiet"]) == 0
    return suite, home, base


def test_report_and_export_need_only_the_store(stored, tmp_path):
    suite, home, base = stored
    written = (base / "lb" / "small.md").read_text()
    shutil.rmtree(base / "images")
    shutil.rmtree(home / "checkpoints")
    shutil.rmtree(home / "adversarial")
    assert main(["report", str(suite), "--home", str(home), "--out", str(tmp_path / "lb")]) == 0
    assert (tmp_path / "lb" / "small.md").read_text() == written
    suite.unlink()  # without the suite file too: by the suite's name
    assert main(["report", "small", "--home", str(home), "--out", str(tmp_path / "lb2")]) == 0
    assert (tmp_path / "lb2" / "small.md").read_text() == written

    for fmt in ("csv", "json", "parquet"):
        out = tmp_path / f"cells.{fmt}"
        assert main(["export", "small", "--home", str(home), "--format", fmt, "--out", str(out),
                     "--predictions"]) == 0
        cells = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
        assert cells["stored"].all() and set(cells["kind"]) == {"model", "clean", "gradnorm", "craft", "attack"}
        attack = cells[cells["kind"] == "attack"]
        assert len(attack) == 2 * (2 + 1)  # two eps x (two white-box + one transfer)
        assert set(attack["threat"]) == {"white-box", "transfer"} and set(attack["attack"]) == {"fgsm"}
        assert {"metrics.accuracy.value", "metrics.accuracy.lo", "metrics.accuracy.n"} <= set(cells.columns)
        preds = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](
            tmp_path / f"cells-predictions.{fmt}")
        assert len(preds) == 2 * 24 + 6 * 12  # clean: every test image per model; attack: the attacked fakes
    records = json.loads((tmp_path / "cells-models.json").read_text())
    assert {r["model"] for r in records} == {"a", "b"}
    for r in records:
        assert {"value", "lo", "hi", "n"} <= set(r["clean_accuracy"])
        assert all({"value", "lo", "hi", "n"} <= set(x["robust_accuracy"]) for x in r["robust"])


def test_every_cell_describes_itself_in_typed_columns(stored):
    _, home, _ = stored
    con = sqlite3.connect(home / "results.sqlite")
    rows = con.execute("SELECT model, attack, params, threat, source, target, adaptive, data_digest, suite "
                       "FROM cells WHERE kind='attack'").fetchall()
    con.close()
    assert len(rows) == 6
    for model, attack, params, threat, source, target, adaptive, data, suite in rows:
        assert attack == "fgsm" and json.loads(params)["eps"] in (0.01, 0.03) and threat in ("white-box", "transfer")
        assert model == target and source in ("a", "b") and adaptive == 0 and len(data) == 64 and suite == "small"


def test_the_query_layer_returns_frames(stored):
    _, home, _ = stored
    store = ResultStore(home / "results.sqlite")
    try:
        res = load_results(store, "small", None)
        assert list(res.variants["name"]) == ["a", "b"] and res.missing == 0
        assert set(res.attacks["family"]) == {"single-step"} and set(res.attacks["budget"]) == {"eps"}
        first = res.attacks.iloc[0]
        frame = res.predictions([first["key"]])
        assert frame.shape == (12, 6)
        # per image: the L2 of the stored image the cell scored, and of the attack's output before storage
        assert frame["l2"].mean() == pytest.approx(first["metrics"]["l2"]["mean"], rel=1e-5)
        assert frame["l2_before"].mean() == pytest.approx(first["craft_metrics"]["l2_before"]["mean"], rel=1e-5)
        clean = res.predictions([res.variants["clean_key"][0]])
        assert clean["l2"].isna().all() and clean["l2_before"].isna().all()  # a clean cell records no norms
    finally:
        store.close()


def test_report_without_a_stored_run_is_refused(tmp_path, capsys):
    assert main(["report", "nothing-here", "--home", str(tmp_path / "home")]) == 2
    assert "results.sqlite: no results database here: run `bench run` first" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # a read-only command creates nothing
    ResultStore(tmp_path / "home" / "results.sqlite").close()
    assert main(["report", "nothing-here", "--home", str(tmp_path / "home")]) == 2
    assert "no finished run of suite nothing-here" in capsys.readouterr().err
