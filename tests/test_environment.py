"""Issue 15: faults of the environment, concurrency, bookkeeping, plug-ins and matplotlib's cache.

These run `bench` in real subprocesses: a read-only folder (as root, with the capability that overrides
permissions dropped), a full disk (a file-size limit), kill -9, two runs and two reports at once.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main

pytestmark = pytest.mark.slow  # these tests train models: .ci/run also runs them at OMP_NUM_THREADS=1

REPO = Path(__file__).resolve().parents[1]

SUITE = """\
name: {name}
data: {{source: synthetic-faces, n: 40, size: 32}}
models:
  a: {{arch: tiny, recipe: {{epochs: {epochs}}}}}
attacks:
  f: {{attack: fgsm, backend: art, eps: [0.01, 0.03]}}
evaluation: {{max_attack_images: 8, attack_batch_size: 8, gradient_norm_images: 8}}
"""


def write_suite(folder: Path, name: str = "t", epochs: int = 1) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, epochs=epochs))
    return path


def env() -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out.pop("BENCH_HOME", None)
    return out


def bench(*args: str, cwd: Path, preexec=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd, env=kw.pop("env", env()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec, **kw)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def runs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT run_id, suite, status, cells_computed, cells_reused FROM runs ORDER BY run_id")\
            .fetchall()
    except sqlite3.OperationalError:  # the database is being created
        return []
    finally:
        con.close()


# ------------------------------------------------------------------------------------- read-only and full disk
def _without_permission_override() -> None:
    """In the child: as root, drop the capabilities that ignore file permissions (so 0o555 means read-only)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(97)


def _read_only_works(tmp: Path) -> bool:
    probe = tmp / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    code = subprocess.run([sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
                          preexec_fn=_without_permission_override, capture_output=True).returncode
    probe.chmod(0o755)
    return code not in (0, 97)


@pytest.mark.parametrize("which", ["home", "leaderboard", "checkpoints"])
def test_read_only_folders_are_one_line_errors_naming_the_path(which, tmp_path):
    if not _read_only_works(tmp_path):
        pytest.skip("cannot make a folder read-only for this user here")
    suite = write_suite(tmp_path)
    home, out = tmp_path / "home", tmp_path / "lb"
    target = {"home": home, "leaderboard": out, "checkpoints": home / "checkpoints"}[which]
    target.mkdir(parents=True)
    target.chmod(0o555)
    try:
        code, _, err = finish(bench("run", str(suite), "--home", str(home), "--out", str(out), "--quiet", cwd=tmp_path,
                                    preexec=_without_permission_override))
    finally:
        target.chmod(0o755)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(target) in err, err
    if which == "checkpoints":  # found while running: the run is marked failed
        assert [r[2] for r in runs(home / "results.sqlite")] == ["failed"]
    else:  # found before any work
        assert not (home / "results.sqlite").exists()


def test_full_disk_is_a_one_line_error_naming_the_file(tmp_path):
    """A file-size limit makes every write past 48 KiB fail as on a full disk (EFBIG)."""
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 << 10, 48 << 10))

    suite = write_suite(tmp_path)
    home = tmp_path / "home"
    code, _, err = finish(bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet",
                                cwd=tmp_path, preexec=limited))
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(home) in err and "cannot write" in err, err


# ------------------------------------------------------------------------------------------------ concurrency
def test_two_runs_on_one_home_compute_each_cell_once(tmp_path):
    suite = write_suite(tmp_path)
    home = tmp_path / "home"
    procs = [bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / f"lb{i}"), "--quiet", cwd=tmp_path)
             for i in range(2)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    con = sqlite3.connect(home / "results.sqlite")
    n_cells = con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    con.close()
    table = runs(home / "results.sqlite")
    assert [r[2] for r in table] == ["finished", "finished"]
    assert sorted(r[3] for r in table) == [0, n_cells], table  # one run computed every cell, the other none
    assert sorted(r[4] for r in table) == [0, n_cells], table  # ... and found them all in the store
    assert any("waiting for another bench run" in err for _, _, err in results)


def test_two_reports_on_one_folder_both_succeed(tmp_path):
    suite = write_suite(tmp_path)
    home, out = tmp_path / "home", tmp_path / "lb"
    assert finish(bench("run", str(suite), "--home", str(home), "--out", str(out), "--quiet", cwd=tmp_path))[0] == 0
    procs = [bench("report", str(suite), "--home", str(home), "--out", str(out), cwd=tmp_path) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    assert (out / "t.md").is_file() and list(out.glob("*.png"))
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


# ------------------------------------------------------------------------------------------------ bookkeeping
def test_a_run_killed_with_kill_9_is_marked_abandoned_at_the_next_start(tmp_path):
    slow = write_suite(tmp_path, "slow", epochs=400)
    home = tmp_path / "home"
    proc = bench("run", str(slow), "--home", str(home), "--quiet", cwd=tmp_path)
    db = home / "results.sqlite"
    for _ in range(600):  # until the run is in the table
        if db.exists() and [r for r in runs(db) if r[2] == "running"]:
            break
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert [r[2] for r in runs(db)] == ["running"]
    code, out, err = finish(bench("run", str(write_suite(tmp_path)), "--home", str(home), "--out", str(tmp_path / "lb"),
                                  "--quiet", cwd=tmp_path))
    assert code == 0, err
    table = runs(db)
    assert [(r[1], r[2]) for r in table] == [("slow", "abandoned"), ("t", "finished")]
    # the summary counts every cell: a rerun finds all of them in the store
    computed = table[1][3]
    code, out, err = finish(bench("run", str(write_suite(tmp_path)), "--home", str(home), "--out", str(tmp_path / "lb"),
                                  "--quiet", cwd=tmp_path))
    assert code == 0 and f"0 cells computed, {computed} from the store" in out, out


def test_the_header_names_the_machine_that_computed_the_numbers_not_the_last_reader(tmp_path):
    suite, home, out = write_suite(tmp_path), tmp_path / "home", tmp_path / "lb"
    assert finish(bench("run", str(suite), "--home", str(home), "--out", str(out), "--quiet", cwd=tmp_path))[0] == 0
    two = dict(env(), OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")  # a rerun at another thread count computes nothing
    code, text, err = finish(bench("run", str(suite), "--home", str(home), "--out", str(out), "--quiet", cwd=tmp_path,
                                   env=two))
    assert code == 0 and "0 cells computed" in text, err
    page = (out / "t.md").read_text()
    machine = next(line for line in page.splitlines() if line.startswith("- Machine"))
    assert machine.startswith("- Machine: ") and "torch threads: 1," in machine, machine
    assert "- Machine-dependent: CPU" in page and "torch threads 2," in page  # the last run, in the appendix


# ------------------------------------------------------------------------------------------------ plug-ins
PLUGIN = """\
from pathlib import Path
Path(__file__).with_name("RAN").write_text("the plug-in's code ran")
from bench.defenses.base import WrapperDefense


class Mine(WrapperDefense):
    pass
"""


def test_validate_imports_plugins_only_with_load_plugins(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(PLUGIN)
    suite = write_suite(tmp_path)
    suite.write_text(suite.read_text() + "defenses:\n  m: {use: mine.py:Mine, applies_to: [a]}\n")
    assert main(["validate", str(suite)]) == 0
    assert "plug-ins checked by name only" in capsys.readouterr().out
    assert not (tmp_path / "RAN").exists()
    assert main(["validate", str(suite), "--load-plugins"]) == 0
    assert (tmp_path / "RAN").exists()
    # a plug-in file that does not exist is found without importing anything
    suite.write_text(suite.read_text().replace("mine.py:Mine", "absent.py:Mine"))
    assert main(["validate", str(suite)]) == 2
    assert "defenses.m.use: plug-in file" in capsys.readouterr().err


def test_crosscheck_implementations_must_be_attacks(tmp_path, capsys):
    (tmp_path / "not_attack.py").write_text("def two(a, b):\n    return a\n\nvalue = 3\n")
    suite = write_suite(tmp_path)
    base = suite.read_text()
    cases = {
        "builtins:print": "is from the standard library, not an attack",
        "not_attack.py:two": "does not take (detector, x, y, params)",
        "not_attack.py:value": "is a int, not an attack",
        "cleverhans": "is not an implementation of fgsm",
    }
    for impl, expected in cases.items():
        suite.write_text(base + f"crosscheck:\n  - {{attack: fgsm, model: a, implementations: [native, '{impl}'],"
                                " params: {eps: 0.03}}\n")
        assert main(["validate", str(suite), "--load-plugins"]) == 2, impl
        err = capsys.readouterr().err
        assert "crosscheck[0].implementations[1]" in err and expected in err, err
    # `bench crosscheck` refuses it before calling it: nothing is printed by print()
    code = main(["crosscheck", "--attack", "fgsm", "--param", "eps=0.03", "--impl", "native", "--impl",
                 "builtins:print", "--model", "tiny", "--n", "2", "--size", "32"])
    out = capsys.readouterr().out
    assert code == 2 and "tensor(" not in out and "not an attack" in out, out


# ------------------------------------------------------------------------------------------------ matplotlib
def test_home_holds_matplotlibs_cache(tmp_path):
    suite = write_suite(tmp_path)
    e = env()
    e.pop("MPLCONFIGDIR", None)
    home = tmp_path / "elsewhere"
    code, _, err = finish(bench("run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet",
                                cwd=tmp_path, env=e))
    assert code == 0, err
    assert (home / "matplotlib").is_dir()
    assert not (tmp_path / ".bench").exists()
