"""End to end: a tiny suite through ART and Foolbox, the leaderboard checked against the database."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import without_rendering_commit

from bench.cli import main
from bench.report.format import compact, prop

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

SUITE = Path(__file__).parent / "suites" / "tiny.yaml"


def _run(home: Path, out: Path, *extra: str) -> int:
    return main(["run", str(SUITE), "--home", str(home), "--out", str(out), "--quiet", *extra])


def _metrics(db: Path) -> dict[str, dict]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT cell_id, kind, metrics FROM cells").fetchall()
    con.close()
    return {cid: json.loads(m) for cid, kind, m in rows if kind != "model"}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("e2e")
    assert _run(base / "home", base / "lb") == 0
    return base / "home", base / "lb"


def test_leaderboard_has_tables_and_figure(first_run):
    _, lb = first_run
    text = (lb / "tiny.md").read_text()
    for heading in ("## Table I", "## Table II", "## Defense ranking", "## Every attack cell", "Accuracy against"):
        assert heading in text
    assert (lb / "tiny-fgsm-eps.png").stat().st_size > 1000
    assert "black-box" in text and "white-box" in text
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] n=\d+", text)  # every accuracy carries its CI and n


def test_leaderboard_numbers_come_from_the_database(first_run):
    home, lb = first_run
    text = (lb / "tiny.md").read_text()
    con = sqlite3.connect(home / "results.sqlite")
    rows = con.execute("SELECT key, metrics FROM cells WHERE kind='attack'").fetchall()
    # 4 attack settings x (2 white-box + 2 transfer); per model 4 controls (storage, noise at eps 0.01 and 0.03,
    # noise at CW's median L2) and 2 check attacks (unbounded, CW rerun with twice its iterations: not-converged)
    assert len(rows) == 16 + 2 * 4 + 2 * 2
    for key, metrics in rows:
        k, m = json.loads(key), json.loads(metrics)
        line = next(li for li in text.splitlines()
                    if li.startswith(f"| {k['label']} ") and f"| {k['source']} -> {k['target']} " in li)
        assert prop(m["accuracy"]) in line
    table_i = text.split("## Table I:")[1].split("\n## ")[0]
    for key, metrics in con.execute("SELECT key, metrics FROM cells WHERE kind='clean'"):
        k, m = json.loads(key), json.loads(metrics)
        line = next(li for li in table_i.splitlines() if li.startswith(f"| {k['variant']} "))
        assert compact(m["accuracy"]) in line  # one seed: the cell is the stored proportion
    con.close()


def test_report_from_the_store_equals_the_runs_leaderboard(first_run, tmp_path):
    """`bench report` renders from the stored plan alone: the same text as the run wrote (parameters and
    overrides in the suite's order, not sorted)."""
    home, lb = first_run
    assert main(["report", str(SUITE), "--home", str(home), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "tiny.md").read_text() == (lb / "tiny.md").read_text()


def test_rerun_reuses_everything_and_fresh_run_reproduces(first_run, tmp_path):
    home, lb = first_run
    before = _metrics(home / "results.sqlite")
    assert _run(home, lb) == 0
    con = sqlite3.connect(home / "results.sqlite")
    computed, reused = con.execute("SELECT cells_computed, cells_reused FROM runs ORDER BY run_id DESC").fetchone()
    con.close()
    assert computed == 0 and reused > 0
    assert _run(tmp_path / "home2", tmp_path / "lb2") == 0
    after = _metrics(tmp_path / "home2" / "results.sqlite")
    assert before.keys() == after.keys()
    for cid in before:
        a = {k: v for k, v in before[cid].items() if k != "seconds_per_image"}
        b = {k: v for k, v in after[cid].items() if k != "seconds_per_image"}
        assert a == b, cid


def test_profile_overrides_are_in_the_header(first_run, tmp_path):
    home, _ = first_run
    assert main(["run", str(SUITE), "--profile", "smaller", "--home", str(home), "--out", str(tmp_path),
                 "--quiet"]) == 0
    text = (tmp_path / "tiny-smaller.md").read_text()
    assert "Profile `smaller` overrides" in text and "0.02" in text


def test_console_script_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "fgsm" in out.stdout and "cw_l2" in out.stdout and "resnet18" in out.stdout


def test_sharded_runs_merge_to_the_same_results(first_run, tmp_path):
    home, _ = first_run
    for k in range(2):  # two "machines": separate homes, separate databases
        assert main(["run", str(SUITE), "--shard", f"{k}/2", "--home", str(tmp_path / f"m{k}"), "--quiet"]) == 0
    merged = tmp_path / "merged.sqlite"
    assert main(["merge", str(merged), str(tmp_path / "m0" / "results.sqlite"),
                 str(tmp_path / "m1" / "results.sqlite")]) == 0
    ref = _metrics(home / "results.sqlite")  # also holds the `smaller` profile's cells
    got = _metrics(merged)
    assert set(got) <= set(ref)
    con = sqlite3.connect(merged)
    assert con.execute("SELECT COUNT(*) FROM cells WHERE kind='attack'").fetchone()[0] == 16 + 2 * 4 + 2 * 2
    con.close()
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds_per_image"}  # noqa: E731
    assert all(strip(got[c]) == strip(ref[c]) for c in got)
    assert main(["report", str(SUITE), "--db", str(merged), "--out", str(tmp_path / "lb")]) == 0
    assert "not run" not in (tmp_path / "lb" / "tiny.md").read_text()


def test_attack_cells_count_unperturbed_images_and_an_unreachable_kappa_is_flagged(first_run, tmp_path):
    home, _ = first_run
    con = sqlite3.connect(home / "results.sqlite")
    crafts = [json.loads(m) for (m,) in con.execute(
        "SELECT metrics FROM cells WHERE kind='craft' AND suite='tiny' AND profile IS NULL")]
    con.close()
    # one per attack point (the suite's 4, 4 controls, 2 check attacks) and source model; every attack cell
    # reads its craft's
    assert len(crafts) == (4 + 4 + 2) * 2
    for m in crafts:
        assert 0 <= m["unchanged"]["k"] <= m["unchanged"]["n"] <= 24
    text = SUITE.read_text().replace("confidence: 0.0", "confidence: 1000.0")  # no tiny CNN reaches it
    suite = tmp_path / "tiny.yaml"
    suite.write_text(text)
    assert main(["run", str(suite), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet"]) == 0
    board = (tmp_path / "lb" / "tiny.md").read_text()
    sanity = board.split("## Sanity checks")[1].split("\n## ")[0]
    flagged = [li for li in sanity.splitlines() if "attack-left-images-unchanged" in li and li.startswith("| ")]
    assert len(flagged) == 2 and all(re.search(r"returned (\d+) of the \1 attacked fakes", li) and "kappa=1000" in li
                                     for li in flagged), sanity
    assert not any("fgsm" in li for li in flagged)
    # every cell made from those examples carries the double dagger, in the tables and in the list of cells
    table_ii = board.split("## Table II")[1].split("\n## ")[0]
    min_norm = table_ii.split("### Minimum-norm attacks")[1].split("\n### ")[0]
    assert all(li.count("‡") == 2 for li in min_norm.splitlines() if li.startswith("| a ") or li.startswith("| b "))
    cells = [li for li in board.split("## Every attack cell")[1].splitlines() if li.startswith("| ")]
    marked = [li for li in cells if "‡" in li]
    assert len(marked) == 4 and all(li.startswith("| cw ") for li in marked)
    assert "the attack gave up, not that the model is robust" in table_ii


EXPECTED = Path(__file__).parent / "expected" / "tiny.md"
GOLDEN_STORE = Path(__file__).parent / "expected" / "tiny.sqlite"


def normalise(board: str) -> str:
    """A leaderboard without what may differ between runs of the same suite: the run's date, commit, cell
    counts, package versions and machine in the header and the appendix, and the craft timings in the list of
    attack cells."""
    out = []
    cells = False
    for line in board.splitlines():
        if line.startswith(("- Numbers:", "- Machine:", "- Machines:", "- Last run:", "- Versions:",
                            "- Machine-dependent:")):
            continue
        if line.startswith("## "):
            cells = line.startswith("## Every attack cell")
        if cells and line.startswith("| ") and not line.startswith("| Attack "):
            line = re.sub(r"\|[^|]*\|$", "| (time) |", line)
        out.append(line)
    return "\n".join(out)


def test_the_leaderboard_equals_the_committed_expected_file(tmp_path):
    """The renderer, guarded: `bench report` on the committed store of the tiny suite (tests/expected/tiny.sqlite)
    writes tests/expected/tiny.md byte for byte, but for the commit that rendered it (the checkout, not the
    store). Both come from one run on one machine
    (`python tests/expected/regenerate.py`); every number is read from the store, so no CPU or thread count
    can change the text."""
    assert GOLDEN_STORE.stat().st_size < 512 * 1024  # committed: it stays small
    before = GOLDEN_STORE.read_bytes()
    db = tmp_path / "tiny.sqlite"
    db.write_bytes(before)
    assert main(["report", "tiny", "--db", str(db), "--out", str(tmp_path / "lb")]) == 0
    got = (tmp_path / "lb" / "tiny.md").read_text()
    assert without_rendering_commit(got) == without_rendering_commit(EXPECTED.read_text())
    assert GOLDEN_STORE.read_bytes() == before


def _cells(db: Path, kind: str) -> list[tuple[dict, dict]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT key, metrics FROM cells WHERE kind=? AND suite='tiny' AND profile IS NULL",
                       (kind,)).fetchall()
    con.close()
    return [(json.loads(k), json.loads(m)) for k, m in rows]


def test_the_tiny_suites_numbers_have_the_properties_every_cpu_gives(first_run):
    """What must hold whatever CPU and thread count trained the models (each bound with a margin of images,
    never an exact trained number): the models learned something, the white-box attacks hurt them, a larger
    FGSM budget hurts at least as much, ART and Foolbox agree on FGSM, the unbounded check breaks every
    image, and every perturbation stays within its budget."""
    home, _ = first_run
    db = home / "results.sqlite"
    clean = {k["variant"]: m for k, m in _cells(db, "clean")}
    assert set(clean) == {"a", "b"}
    assert all(0.55 <= m["accuracy"]["value"] <= 1 and m["accuracy"]["n"] == 60 for m in clean.values())
    acc = {(k["label"], k["source"], k["target"]): m["accuracy"] for k, m in _cells(db, "attack")}
    assert all(a["n"] == 24 for a in acc.values())
    one = 1 / 24  # one image
    for m in ("a", "b"):
        unperturbed = acc[("storage", m, m)]["value"]  # the attacked fakes through storage alone
        small, large = acc[("fgsm[eps=0.01]", m, m)]["value"], acc[("fgsm[eps=0.03]", m, m)]["value"]
        assert large <= small + 2 * one and large <= unperturbed + one, (m, small, large, unperturbed)
        assert abs(acc[("fgsm_fb", m, m)]["value"] - large) <= 3 * one  # one attack, two toolkits
        assert acc[("cw", m, m)]["value"] <= 6 * one  # CW-L2 without a budget breaks nearly every fake
        assert acc[("unbounded", m, m)]["value"] <= one
    for k, m in _cells(db, "craft"):
        before = m["success_before_storage"]  # the attack's own float output on the bare source detector
        assert 0 <= before["k"] <= before["n"] <= 24
        eps = k["params"].get("eps") if isinstance(k.get("params"), dict) else None
        if k["attack"] == "fgsm" and eps is not None:
            assert m["linf_before"]["median"] <= eps + 1e-6 and m["linf_before"]["mean"] <= eps + 1e-6
