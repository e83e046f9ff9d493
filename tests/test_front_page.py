"""The leaderboard's first screen: the summary's cells equal the tables below it and the ranking they come from,
its sentences quote the numbers they state, sanity flags are grouped, the reading path is short and narrow, the
figures are drawn from the store, and the header names the commit that computed the numbers."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.report.board import Board
from bench.report.flags import group_flags, what_to_do
from bench.report.format import compact
from bench.report.header import numbers_line
from bench.report.layout import MAIN_MAX_LINES, MAX_TABLE_COLUMNS, layout_problems, main_part, table_widths
from bench.report.leaderboard import _flag_groups
from bench.report.ranking import AxisValue, PairDiff, Ranking, compute_ranking
from bench.report.sanity import ALL_CHECKS, Flag, run_checks
from bench.report.summary import checks_sentence, norm_text, robust_text, sentences
from bench.results.provenance import SOURCE_ROOT, git_commit
from bench.results.query import load_results
from bench.results.store import ResultStore

TINY = Path(__file__).parent / "suites" / "tiny.yaml"
# Two seeds and an adaptive defense: the summary's adaptive column, seeds in the captions.
FRONT = {
    "name": "front", "seed": 0, "seeds": 2,
    "data": {"source": "synthetic-faces", "n": 160, "size": 32},
    "models": {"a": {"arch": "tiny", "recipe": {"epochs": 8, "lr": 0.05, "batch_size": 16}},
               "b": {"arch": "tiny", "recipe": {"epochs": 8, "lr": 0.03, "batch_size": 16}}},
    "defenses": {"jpeg": {"use": "jpeg", "params": {"quality": 75}, "applies_to": ["a"], "adaptive": True}},
    "attacks": {"fgsm": {"attack": "fgsm", "backend": "art", "eps": [0.01, 0.03], "table": {"eps": 0.03}},
                "cw": {"attack": "cw_l2", "backend": "foolbox", "confidence": 0.0, "c_min": 1.0, "c_max": 100.0,
                       "binary_search_steps": 2, "max_iterations": 10, "learning_rate": 0.05, "abort_early": True}},
    "threat_models": {"white_box": True, "transfer": [["b", "a"]]},
    "evaluation": {"max_attack_images": 12, "attack_batch_size": 12, "gradient_norm_images": 8,
                   "checks": {"unbounded": None, "convergence": None}},
}


def _run(suite: Path, base: Path) -> tuple[str, Path]:
    assert main(["run", str(suite), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    name = yaml.safe_load(suite.read_text())["name"]
    return (base / "lb" / f"{name}.md").read_text(), base


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_thread) -> tuple[str, Path]:
    return _run(TINY, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def front(tmp_path_factory, one_thread) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("front")
    suite = base / "front.yaml"
    suite.write_text(yaml.safe_dump(FRONT, sort_keys=False))
    return _run(suite, base)


def _board(base: Path, suite: str) -> Board:
    return Board(load_results(ResultStore(base / "home" / "results.sqlite"), suite, None), base / "lb")


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _table(section: str) -> list[dict[str, str]]:
    """The first markdown table of a section as rows of header -> cell."""
    lines = [li for li in section.splitlines() if li.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, [c.strip() for c in li.strip("|").split("|")], strict=True)) for li in lines[2:]]


def _plain(cell: str) -> str:
    """A cell without the best-in-column marks."""
    return cell.replace("**", "").removesuffix(" *").strip()


@pytest.mark.parametrize("which", ["tiny", "front"])
def test_the_summary_cells_equal_the_tables_below_and_the_ranking(which, request):
    text, base = request.getfixturevalue(which)
    b = _board(base, which)
    r = compute_ranking(b)
    summary = _table(_section(text, "## Summary"))
    table_i = {re.sub(r" \(\d of \d seeds flagged\)", "", row["Model"]): row
               for row in _table(_section(text, "## Table I:"))}
    families = _section(text, "## Table II")
    assert [row["Model"].removesuffix(" †") for row in summary] == [r.labels[g] for g in r.order]
    for row, g in zip(summary, r.order, strict=True):
        label = row["Model"]
        assert _plain(table_i[label]["Accuracy"]) == row["Clean accuracy"]
        robust = next(v for k, v in row.items() if k.startswith("Robust accuracy"))
        assert robust == robust_text(r.rows[g]["robust"])
        assert row["Median min-norm L2"] == norm_text(r.rows[g]["min_norm"])
        rank = r.rows[g]["robust"].rank
        assert row["Rank: robust"].startswith(str(rank))
        if "Adaptive attack" in row and row["Adaptive attack"] != "–":
            value, title = row["Adaptive attack"].rsplit(", ", 1)
            cells = [_table(part) for part in families.split("### ")[1:]]
            found = [_plain(t[f"{title} adaptive"]) for tab in cells for t in tab
                     if t["Model"] == label and f"{title} adaptive" in t]
            assert found == [value]
    if which == "front":
        assert any(row.get("Adaptive attack", "–") != "–" for row in summary)  # the defended model's row
        assert "2 training seeds" in _section(text, "## Summary")


def test_the_sentences_quote_the_numbers_they_state(tiny):
    text, base = tiny
    r = compute_ranking(_board(base, "tiny"))
    said = [li[2:] for li in _section(text, "## Summary").splitlines() if li.startswith("- ")]
    for axis, what in (("robust", "On robust accuracy"), ("min_norm", "On median minimum-norm L2")):
        line = next(s for s in said if s.startswith(what))
        first = max((g for g in r.order if g not in r.flagged and r.rows[g][axis].rank == 1),
                    key=lambda g, a=axis: r.rows[g][a].value)
        fmt = robust_text if axis == "robust" else norm_text
        assert f"{r.labels[first]} ranks first with {fmt(r.rows[first][axis])}" in line
    kept = [g for g in r.order if g not in r.flagged and r.rows[g]["robust"].value]
    broke = next((s for s in said if "no bounded attack broke" in s), "")
    assert bool(kept) == bool(broke)
    if "(lowest: " in broke:  # every model kept some fakes: the sentence names the lowest
        low = min(kept, key=lambda g: r.rows[g]["robust"].value)
        assert f"lowest: {r.labels[low]} at {robust_text(r.rows[low]['robust'])}" in broke
    else:
        assert all(f"{r.labels[g]} at {robust_text(r.rows[g]['robust'])}" in broke for g in kept[:4])
    checks = next(s for s in said if "check" in s and "fired" in s)
    board_flags = run_checks(_board(base, "tiny").every_cell, _board(base, "tiny").clean)
    for f in board_flags:
        assert f.check in checks


def _axis(value, lo, hi, rank, tied=False, n=32) -> AxisValue:
    return AxisValue(value, lo, hi, n, 3, rank, tied)


def test_sentences_from_a_constructed_ranking_state_each_interval():
    r = Ranking(
        headline="L-inf eps = 0.02",
        rows={"d": {"robust": _axis(0.854, 0.671, 0.977, 1, True), "min_norm": _axis(7.27, 6.85, 7.38, 1)},
              "u": {"robust": _axis(0.750, 0.532, 0.929, 1, True), "min_norm": _axis(2.66, 2.42, 2.79, 2)},
              "x": {"robust": _axis(0.0, 0.0, 0.107, 3), "min_norm": _axis(float("inf"), 3.0, float("inf"), 3)}},
        labels={"d": "ResNet-18 + JPEG", "u": "ResNet-18", "x": "Broken"},
        order=["d", "u", "x"], flagged={},
        separated={"robust": (2, 3), "min_norm": (3, 3)},
        baseline_diffs=[PairDiff("robust", "d", "u", 0.104, 0.021, 0.187, True),
                        PairDiff("min_norm", "d", "u", 4.61, 4.1, 5.0, True)])
    said = sentences(r, [], len(ALL_CHECKS))
    assert said[0] == ("On robust accuracy at L-inf eps = 0.02, ResNet-18 + JPEG ranks first with 85.4 (67-98), "
                       "tied with ResNet-18 at 75.0 (53-93): the paired comparison does not separate them.")
    assert said[1] == "On median minimum-norm L2, ResNet-18 + JPEG ranks first with 7.27 (6.8-7.4)."
    diff = next(s for s in said if s.startswith("Against its undefended baseline"))
    assert "robust accuracy +10.4 points (+2.1 to +18.7)" in diff and "+4.61 (+4.10 to +5.00)" in diff
    assert "separates from none" in diff
    last = next(s for s in said if s.startswith("At L-inf"))
    assert "every attacked fake of Broken at 0.0 (0-11) fell" in last
    assert "no minimum-norm attack fooled most fakes of Broken" in last
    assert said[-1] == f"No sanity check fired ({len(ALL_CHECKS)} checks run)."


def test_three_seeds_firing_one_check_are_one_row_with_the_worst_instance():
    flags = [Flag("noise-as-strong-as-attack", m, f"{m}: storage leaves {s:.0%}", s)
             for m, s in (("r", 0.01), ("r@seed1", 0.05), ("r@seed2", 0.02))]
    group_of = {"r": "r", "r@seed1": "r", "r@seed2": "r"}
    rows = group_flags(flags, group_of, {"r": 3}, {"r": "ResNet-18"})
    assert len(rows) == 1
    row = rows[0]
    assert (row.check, row.labels, row.fired, row.seeds, len(row.flags)) == (
        "noise-as-strong-as-attack", ("ResNet-18",), 3, 3, 3)
    assert row.worst.model == "r@seed1"
    # the same check on many models is one row (one cause, said once); two checks stay two rows
    many = flags + [Flag("noise-as-strong-as-attack", g, "x", 0.0) for g in ("v", "w")]
    many += [Flag("degenerate-classifier", "v", "leans to real", 0.2)]
    rows = group_flags(many, group_of, {"r": 3, "v": 1, "w": 1}, {"r": "ResNet-18"})
    assert [(x.check, len(x.groups)) for x in rows] == [("noise-as-strong-as-attack", 3), ("degenerate-classifier", 1)]
    assert rows[0].fired == 5 and rows[0].seeds == 5
    assert checks_sentence(rows, 12).startswith("Two checks fired: noise-as-strong-as-attack on ResNet-18")


def test_flags_on_the_board_group_by_model_and_say_what_to_do(front):
    _, base = front
    b = _board(base, "front")
    flags = run_checks(b.every_cell, b.clean, b.gradnorms)
    rows = _flag_groups(b, flags)
    assert sum(len(r.flags) for r in rows) == len(flags)  # no flag dropped
    assert all("@seed" not in label for r in rows for label in r.labels)
    assert all(what_to_do(c.__name__.replace("_", "-")) for c in ALL_CHECKS)  # every check's doc says what to do


@pytest.mark.parametrize("which", ["tiny", "front"])
def test_the_reading_path_is_short_narrow_and_opens_with_the_summary(which, request):
    text, base = request.getfixturevalue(which)
    assert layout_problems(text) == []
    main = main_part(text)
    assert len(main) <= MAIN_MAX_LINES and main[0].startswith("# Leaderboard")
    assert "## Appendix" in text and "## Every attack cell" in text.split("## Appendix")[1]
    assert all(cols <= MAX_TABLE_COLUMNS for _, cols in table_widths(main))
    # the figures are drawn from the store and linked from the main document
    for png in (f"{which}-robust-budget.png", f"{which}-security-curve.png"):
        assert (base / "lb" / png).stat().st_size > 5000 and f"]({png})" in "\n".join(main)


def test_the_layout_check_finds_what_breaks_the_rules():
    wide = "| " + " | ".join(f"c{i}" for i in range(12)) + " |\n|" + "---|" * 12 + "\n"
    text = "# T\n" + "x\n" * 50 + "## Summary\n" + wide + "y\n" * 400 + "## Appendix\n" + wide
    problems = layout_problems(text)
    assert any("summary starts at line 52" in p for p in problems)
    assert any("main document is" in p for p in problems)
    assert sum("12 columns" in p for p in problems) == 1  # the appendix's wide table is allowed


def test_the_header_names_the_commit_that_computed_the_numbers(tiny):
    text, base = tiny
    con = sqlite3.connect(base / "home" / "results.sqlite")
    recorded = {c for (c,) in con.execute("SELECT git_commit FROM runs")}
    con.close()
    line = next(li for li in text.splitlines() if li.startswith("- Numbers:"))
    assert text.splitlines().index(line) < 6  # in the three-line header
    if recorded == {"unknown"}:
        pytest.skip("bench does not run from a git checkout here")
    assert f"`{recorded.pop()}`" in line


def _git_history() -> bool:
    out = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=SOURCE_ROOT, capture_output=True, text=True)
    return out.returncode == 0


def test_a_run_records_the_commit_whatever_its_working_directory(tmp_path, monkeypatch):
    if git_commit() == "unknown":
        pytest.skip("bench does not run from a git checkout here")
    monkeypatch.chdir(tmp_path)  # outside any checkout: the commit is still bench's own
    assert git_commit() != "unknown" and git_commit() == git_commit(SOURCE_ROOT)


def _set_commit(db: Path, commit: str) -> None:
    """The store as an older commit would have left it: its runs' commit, sealed again as a run seals itself."""
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET git_commit=?", (commit,))
    con.commit()
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    store = ResultStore(db)
    for run_id in ids:
        store._reseal(run_id)
    store.db.commit()
    store.close()


def test_a_store_computed_by_an_older_commit_says_so(tiny, tmp_path):
    if not _git_history():
        pytest.skip("no git history here")
    _, base = tiny
    db = tmp_path / "results.sqlite"
    db.write_bytes((base / "home" / "results.sqlite").read_bytes())
    older = subprocess.run(["git", "rev-parse", "--short=12", "HEAD~1"], cwd=SOURCE_ROOT, capture_output=True,
                           text=True).stdout.strip()
    _set_commit(db, older)
    b = Board(load_results(ResultStore(db), "tiny", None), tmp_path)
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=SOURCE_ROOT, capture_output=True,
                          text=True).stdout.strip()
    line = numbers_line(b, rendering=head)
    assert f"computed by commit `{older}`" in line and f"rendered by `{head}`" in line
    assert "older commit than the one rendering it" in line
    _set_commit(db, "unknown")
    b = Board(load_results(ResultStore(db), "tiny", None), tmp_path)
    assert "recorded no commit" in numbers_line(b, rendering=head)


def test_compact_cells_carry_the_interval():
    assert compact({"value": 0.979, "lo": 0.85, "hi": 1.0, "n": 32}) == "97.9 (85-100)"
    assert compact(None) == "n/a"


def test_rendering_a_store_imports_no_torch(tiny, tmp_path):
    """`bench report` reads the store: pandas and matplotlib, never torch or the toolkits."""
    _, base = tiny
    argv = ["report", str(TINY), "--home", str(base / "home"), "--out", str(tmp_path)]
    code = (f"import sys\nfrom bench.cli import main\nassert main({argv!r}) == 0\n"
            "print(sorted(m for m in ('torch', 'art', 'foolbox', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "tiny.md").read_text() == (base / "lb" / "tiny.md").read_text()
