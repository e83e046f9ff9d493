"""The docs' walk-through, end to end: a user's preprocessor defense in a file outside the package,
named in a suite, run, and ranked in the rendered leaderboard."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

DOCS = Path(__file__).resolve().parents[1] / "docs" / "adding-a-defense.md"

SUITE = """
name: plugin
seed: 0
data: {source: synthetic-faces, n: 240, size: 32}
models:
  a: {arch: tiny, label: Tiny A, recipe: {epochs: 10, lr: 0.05, batch_size: 16}}
  b: {arch: tiny, label: Tiny B, recipe: {epochs: 10, lr: 0.03, batch_size: 16}}
attacks:
  fgsm: {attack: fgsm, backend: art, eps: [0.01, 0.03], table: {eps: 0.03}}
threat_models:
  white_box: true
  transfer: [[b, a]]
defenses:
  bitdepth:
    use: my_defenses.py:BitDepth
    params: {bits: 3}
    applies_to: [a]
    label: 3-bit squeezing
    adaptive: true
evaluation: {max_attack_images: 16, attack_batch_size: 16, gradient_norm_images: 8}
"""


def _docs_defense_code() -> str:
    """The Python block of section 2 of docs/adding-a-defense.md (so the docs are tested too)."""
    text = DOCS.read_text()
    section = text.split("## 2. The class", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/adding-a-defense.md section 2 lost its code block"
    return match.group(1)


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    nxt = text.find("\n## ", start + 1)
    return text[start : nxt if nxt >= 0 else None]


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    experiment = tmp_path_factory.mktemp("my-experiment")  # outside the package, not on sys.path
    (experiment / "my_defenses.py").write_text(_docs_defense_code())
    (experiment / "suite.yaml").write_text(SUITE)
    home, out = experiment / "home", experiment / "lb"
    assert main(["validate", str(experiment / "suite.yaml")]) == 0
    assert main(["run", str(experiment / "suite.yaml"), "--home", str(home), "--out", str(out), "--quiet"]) == 0
    return experiment, home, out / "plugin.md"


def _table(section: str, header_starts: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the markdown table in `section` whose header line starts with `header_starts`."""
    lines = section.splitlines()
    at = next(i for i, li in enumerate(lines) if li.startswith(header_starts))
    body = []
    for li in lines[at + 2:]:
        if not li.startswith("|"):
            break
        body.append([c.strip() for c in li.strip().strip("|").split("|")])
    return [h.strip() for h in lines[at].strip().strip("|").split("|")], body


def test_user_defense_is_ranked_in_the_leaderboard(plugin_run):
    _, _, leaderboard = plugin_run
    ranking = _section(leaderboard.read_text(), "Defense ranking")
    header, rows = _table(ranking, "| Rank")
    names = [r[1].removesuffix(" †") for r in rows]  # † would flag a degenerate model
    assert "Tiny A + 3-bit squeezing" in names and "Tiny A" in names and "Tiny B" in names
    defended = rows[names.index("Tiny A + 3-bit squeezing")]
    robust = header.index("Robust accuracy at L-inf eps = 0.03")
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] n=\d+", defended[robust]), "accuracies carry an interval and n"
    # sorted by rank on the robust axis (models flagged degenerate, if any, come last)
    ranks = [int(r[0].split()[0]) for r in rows if "†" not in r[1]]
    assert ranks == sorted(ranks)
    # the adaptive cell (attacked through the defense, BPDA gradient) enters the robust axis of the defended row
    cells_header, cells = _table(ranking, "| Model")
    adaptive = cells_header.index("FGSM adaptive (through the defense)")
    by_name = {r[0].removesuffix(" †"): r for r in cells}
    assert by_name["Tiny A + 3-bit squeezing"][adaptive] != "n/a" and "n=16" in by_name["Tiny A + 3-bit squeezing"][
        adaptive]
    assert by_name["Tiny A"][adaptive] == "n/a"
    # did the defense help? the defended model against its base model, with a paired interval on both axes
    _, diffs = _table(ranking, "| Defended model")
    # a tiny model's training differs across CPUs: either row may carry the degenerate flag (†) on some machine
    assert [r[0].removesuffix(" †") for r in diffs] == ["Tiny A + 3-bit squeezing"]
    assert diffs[0][1].startswith("Tiny A")
    assert re.search(r"[+-]\d+\.\d pp \[[+-]\d+\.\d, [+-]\d+\.\d\] (separated|tied)", diffs[0][2])


def test_user_defense_cells_are_in_the_database(plugin_run):
    _, home, _ = plugin_run
    con = sqlite3.connect(home / "results.sqlite")
    kinds = dict(con.execute("SELECT kind, COUNT(*) FROM cells WHERE key LIKE '%bitdepth%' GROUP BY kind"))
    con.close()
    assert kinds.get("clean") == 1 and kinds.get("attack", 0) >= 3


BREAKS_ON_BIG_BATCHES = '''
import torch
from bench.defenses.preprocessor import PreprocessorDefense


class BreaksOnBigBatches(PreprocessorDefense):
    """Passes the preflight probe (2 images), then returns NaN on the real evaluation batches."""

    differentiable = True

    def transform(self, x):
        return x * float("nan") if len(x) > 2 else x
'''


def test_defense_breaking_its_contract_mid_run_is_named_and_finished_cells_are_kept(tmp_path, capsys):
    (tmp_path / "broken.py").write_text(BREAKS_ON_BIG_BATCHES)
    suite = SUITE.split("defenses:")[0] + (
        "defenses:\n  broken: {use: broken.py:BreaksOnBigBatches, applies_to: [a]}\n"
        "evaluation: {max_attack_images: 16, attack_batch_size: 16, gradient_norm_images: 8}\n"
    )
    (tmp_path / "suite.yaml").write_text(suite)
    home = tmp_path / "home"
    code = main(["run", str(tmp_path / "suite.yaml"), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "defenses.broken" in err and "NaN" in err
    con = sqlite3.connect(home / "results.sqlite")
    clean = [k for (k,) in con.execute("SELECT key FROM cells WHERE kind = 'clean'")]
    status = con.execute("SELECT status FROM runs").fetchall()
    con.close()
    assert len(clean) == 2 and not any("broken" in k for k in clean)  # a and b were scored and kept
    assert status == [("failed",)]
