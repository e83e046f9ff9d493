"""An optional section from a file outside the package: its own suite field validates, its cells run, its part
renders in the leaderboard (docs/architecture.md, "Where to add what")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.suite.load import load_suite

pytestmark = pytest.mark.slow  # the run trains a tiny model

SECTION = '''
"""A plug-in section: per model, how many attacked fakes it scores real above a threshold."""
from pydantic import BaseModel, ConfigDict, Field

from bench.cells.keys import cell_key, declare_kind
from bench.cells.registry import Record, computes
from bench.errors import BenchError
from bench.sections import Section
from bench.suite.plan import SectionCell


class Tally(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    models: list[str] = Field(min_length=1)


declare_kind("tally", (1,))  # bump when what a tally cell computes changes: its cells get new keys


def check(ls, load_plugins):
    for name in ls.suite.tally.models:
        if name not in ls.models:
            raise BenchError("tally.models", f"unknown model {name!r}")


def cells(ls, plan):
    cfg = ls.suite.tally
    out = []
    for name in cfg.models:
        mkey = plan.models[name].key
        key = cell_key("tally", cfg.threshold, mkey, plan.data_key, plan.attack_ids)
        out.append(SectionCell("tally", key, (mkey,), {"model": name, "threshold": cfg.threshold}))
    return out


@computes("tally")
def run_tally(cell, ctx):
    p_real = ctx.detector(cell.payload["model"]).predict_proba(ctx.attacked.images)[:, 1]
    return Record({"real": int((p_real > cell.payload["threshold"]).sum()), "n": len(p_real)})


def render(board, out_dir, stem):
    rows = [r for r in board.results.sections.to_dict("records") if r["kind"] == "tally"]
    lines = [f"- {r['payload']['model']}: {r['metrics']['real']} of {r['metrics']['n']} attacked fakes scored real"
             for r in rows if isinstance(r["metrics"], dict)]
    return "## Tally of fakes scored real\\n\\n" + "\\n".join(lines)


SECTION = Section(kind="tally", field="tally", schema=Tally, default=Field(...), check=check, cells=cells,
                  render=render, order=30)
'''

SUITE = {
    "name": "tally",
    "seed": 0,
    "sections": ["plugins/my_section.py:SECTION"],
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 4, "lr": 0.05, "batch_size": 16}}},
    "attacks": {"fgsm": {"attack": "fgsm", "backend": "native", "eps": 0.03}},
    "evaluation": {"max_attack_images": 8, "attack_batch_size": 8, "gradient_norm_images": 4},
    "tally": {"threshold": 0.5, "models": ["a"]},
}


def _write(folder: Path, suite: dict) -> Path:
    (folder / "plugins").mkdir(exist_ok=True)
    (folder / "plugins" / "my_section.py").write_text(SECTION)
    path = folder / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    return path


def test_the_plugin_section_field_is_validated(tmp_path: Path):
    ls = load_suite(_write(tmp_path, SUITE))
    assert ls.suite.tally.threshold == 0.5 and "tally" in [s.kind for s in ls.sections]
    bad = {**SUITE, "tally": {"threshold": 2, "models": ["a"]}}
    with pytest.raises(BenchError) as err:
        load_suite(_write(tmp_path, bad))
    assert "suite.yaml" in str(err.value) and "tally.threshold" in str(err.value)
    with pytest.raises(BenchError, match="tally.models: unknown model 'z'"):
        load_suite(_write(tmp_path, {**SUITE, "tally": {"models": ["z"]}}))
    without = {k: v for k, v in SUITE.items() if k != "sections"}
    with pytest.raises(BenchError, match="tally: unknown field"):
        load_suite(_write(tmp_path, without))
    ls = load_suite(_write(tmp_path, bad), load_plugins=False)  # checked by name only: its field is not read
    assert ls.suite.name == "tally"


def test_a_bad_plugin_section_is_named(tmp_path: Path):
    suite = {**SUITE, "sections": ["plugins/nope.py:SECTION"]}
    with pytest.raises(BenchError, match=r"sections\[0\].*does not exist"):
        load_suite(_write(tmp_path, suite))
    with pytest.raises(BenchError, match=r"sections\[0\].*not a bench.sections.Section"):
        load_suite(_write(tmp_path, {**SUITE, "sections": ["plugins/my_section.py:Tally"]}))
    twice = {**SUITE, "sections": ["plugins/my_section.py:SECTION", "plugins/my_section.py:SECTION"]}
    with pytest.raises(BenchError, match=r"sections\[1\].*already has a field 'tally'"):
        load_suite(_write(tmp_path, twice))


def test_the_plugin_section_runs_and_renders(tmp_path: Path, one_thread):
    path = _write(tmp_path, SUITE)
    assert main(["run", str(path), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet"]) == 0
    con = sqlite3.connect(tmp_path / "home" / "results.sqlite")
    rows = con.execute("SELECT metrics FROM cells WHERE kind = 'tally'").fetchall()
    con.close()
    assert len(rows) == 1 and json.loads(rows[0][0])["n"] == 8
    board = (tmp_path / "lb" / "tally.md").read_text()
    assert "## Tally of fakes scored real" in board and "of 8 attacked fakes scored real" in board
    # the report reads the store alone: the plug-in is loaded again from the suite's stored `sections:`
    assert main(["report", "tally", "--home", str(tmp_path / "home"), "--out", str(tmp_path / "again")]) == 0
    assert "## Tally of fakes scored real" in (tmp_path / "again" / "tally.md").read_text()
