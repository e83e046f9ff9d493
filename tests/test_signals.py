"""SIGTERM and SIGHUP stop a run as Ctrl-C does; temporary files a killed process left go at the next start
(issue 24). These run `bench` in real subprocesses."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: {name}
data: {{source: synthetic-faces, n: 40, size: 32}}
models:
  a: {{arch: tiny, recipe: {{epochs: {epochs}}}}}
attacks:
  f: {{attack: fgsm, backend: art, eps: [0.03]}}
evaluation: {{max_attack_images: 8, attack_batch_size: 8, gradient_norm_images: 8}}
report: {{figures: false}}
"""


def write_suite(folder: Path, name: str, epochs: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, epochs=epochs))
    return path


def bench(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_HOME"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def statuses(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT status FROM runs ORDER BY run_id")]
    except sqlite3.OperationalError:  # being created
        return []
    finally:
        con.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_mark_the_run_interrupted_with_a_message(tmp_path, sig):
    home = tmp_path / "home"
    proc = bench("run", str(write_suite(tmp_path, "slow", 400)), "--home", str(home), "--quiet", cwd=tmp_path)
    db = home / "results.sqlite"
    for _ in range(600):  # until the run is in the table (training has started)
        if db.exists() and "running" in statuses(db):
            break
        time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err
    assert err.count("\n") == 1 and f"interrupted by {signal.Signals(sig).name}: 0 cells were saved" in err, err
    assert "Traceback" not in err
    assert statuses(db) == ["interrupted"]


def test_temporary_files_a_killed_process_left_are_removed_at_the_next_start(tmp_path):
    home, lb = tmp_path / "home", tmp_path / "lb"
    (home / "checkpoints").mkdir(parents=True)
    (home / "adversarial").mkdir()
    lb.mkdir()
    left = [home / "checkpoints" / ".a-0123.safetensors.abcd1234.tmp", home / "adversarial" / ".x.pt.zz_9ab12.tmp",
            lb / ".t.md.k2j4h5g6.tmp"]
    for p in left:
        p.write_bytes(b"")
    old = time.time() - 3600
    os.utime(lb / ".t.md.k2j4h5g6.tmp", (old, old))
    fresh = lb / ".t.md.q1w2e3r4.tmp"  # a report writing now: kept
    fresh.write_bytes(b"")
    mine = home / "notes.tmp"  # not a temporary file of ours
    mine.write_text("keep")
    proc = bench("run", str(write_suite(tmp_path, "t", 1)), "--home", str(home), "--out", str(lb), "--quiet",
                 cwd=tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert not any(p.exists() for p in left)
    assert fresh.exists() and mine.read_text() == "keep"
