"""The Ray executor: a two-node cluster gives the serial run's leaderboard, a worker killed mid-cell is retried,
a driver killed mid-run loses only the cells in flight, a cell that fails on its input fails alone, and Ray
writes nothing under the user's home.

Cells are compared with the serial executor at one torch thread, as each Ray worker runs: torch's CPU
kernels split their reductions by thread count, so a different count changes the last bits of a training run
(and, after a few epochs, its model). Every test here runs real Ray processes on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402  (after the skip: Ray is optional)
from test_end_to_end import normalise  # noqa: E402  (tests/ is on sys.path under pytest)

from bench.cli import main  # noqa: E402
from bench.distributed.ray_executor import RayExecutor  # noqa: E402
from bench.report.leaderboard import write_leaderboard  # noqa: E402
from bench.results.query import results_from  # noqa: E402
from bench.results.store import ResultStore  # noqa: E402
from bench.running.runner import prepare, run_suite  # noqa: E402
from bench.suite.load import load_suite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SUITE = Path(__file__).parent / "suites" / "ray.yaml"
# 2 models, 2 clean, 2 gradnorm, 3 attack points x 2 sources, 3 x (2 white-box + 1 transfer); per model 4 controls
# (storage, noise at eps 0.01 and 0.03, noise at CW's median L2) and 2 check attacks (unbounded, CW with twice its
# iterations), a craft and a scored cell each
N_CELLS = 21 + 2 * (4 + 2) * 2

# A user's FGSM backend (the suite loads it on every worker); `{hook}` runs first on every batch.
PLUGIN = '''
import os, signal, time
from pathlib import Path

import torch
from torch.nn import functional as F

HERE = Path(__file__).parent


def fgsm(detector, x, y, params):
{hook}
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(detector(x), y), x)
    return (x + params.eps * g.sign()).clamp(0.0, 1.0).detach()
'''
HOOKS = {
    # the first call anywhere kills its own process (SIGKILL: no cleanup, as an OOM kill or a lost node)
    "crash": '''    if not (HERE / "crashed").exists():
        (HERE / "crashed").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)''',
    # the first call anywhere waits until the test opens the gate (the driver is killed meanwhile); the
    # others go on, so the rest of the run finishes on the other CPU
    "gate": '''    try:
        os.close(os.open(HERE / "gated", os.O_CREAT | os.O_EXCL))
        first = True
    except FileExistsError:
        first = False
    for _ in range(3000 if first else 0):
        if (HERE / "gate").exists():
            break
        time.sleep(0.1)''',
    # breaks the attack contract: a ContractError naming the attack, a bad-input failure of the cell
    "broken": '''    return x[:, :1]''',
}


def suite_with_plugin(folder: Path, hook: str) -> Path:
    """The Ray test suite plus `user: {attack: fgsm, backend: plugin.py:fgsm}` whose backend runs `hook`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.py").write_text(PLUGIN.format(hook=HOOKS[hook]))
    text = SUITE.read_text().replace(
        "threat_models:", "  user: {attack: fgsm, backend: plugin.py:fgsm, eps: 0.03}\nthreat_models:")
    path = folder / "ray.yaml"
    path.write_text(text)
    return path


def metrics(db: Path) -> dict[str, dict]:
    """Every stored cell's metrics, without what may differ between runs (timings, the home's path)."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT cell_id, metrics FROM cells").fetchall()
    con.close()
    return {cid: {k: v for k, v in json.loads(m).items() if k not in ("seconds_per_image", "path")}
            for cid, m in rows}


def runs(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT cells_computed, cells_reused, status FROM runs ORDER BY run_id").fetchall()
    con.close()
    return rows


@pytest.fixture(scope="module")
def user_home():
    """A fresh, empty user home for the module (Ray's processes inherit it): Ray must write nothing there."""
    mp = pytest.MonkeyPatch()
    base = Path(tempfile.mkdtemp(prefix="rt-"))  # short: Ray's socket paths must fit in 107 bytes
    (base / "home").mkdir()
    (base / "ray").mkdir()
    mp.setenv("HOME", str(base / "home"))
    mp.setenv("RAY_TMPDIR", str(base))  # where a test cluster notes its address (never /tmp/ray)
    yield base / "home"
    mp.undo()
    shutil.rmtree(base, ignore_errors=True)


def assert_untouched(user_home: Path) -> None:
    """Nothing of Ray's (no `.ray`, no auth token, no session) under the user's home. ART writes `~/.art/` on
    import whatever ART_DATA_PATH says (art/config.py), under any executor: not Ray's, so not checked here."""
    assert sorted(p.name for p in user_home.iterdir() if p.name != ".art") == []


def run_ray(suite: Path, home: Path, out: Path, **options) -> tuple[RayExecutor, object]:
    """A run through the API (to inspect the executor): prepare, run on Ray, write the leaderboard."""
    ls = load_suite(suite)
    ctx = prepare(ls, home=home, quiet=True)
    store = ResultStore(home / "results.sqlite")
    executor = RayExecutor(quiet=True, **options)
    try:
        stats = run_suite(ctx, store, executor=executor)
        write_leaderboard(results_from(store, ls, ctx.plan), out)
    finally:
        store.close()
    return executor, stats


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, one_thread, user_home) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("serial")
    assert main(["run", str(SUITE), "--home", str(base / "home"), "--out", str(base / "lb"), "--quiet"]) == 0
    return base / "home", base / "lb"


@pytest.fixture
def two_nodes(user_home):
    """A two-node Ray cluster on this machine, one CPU per node, dashboard off."""
    temp = tempfile.mkdtemp(prefix="rc-")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "temp_dir": temp})
    cluster.add_node(num_cpus=1, temp_dir=temp)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_a_two_node_cluster_gives_the_serial_leaderboard(serial_run, two_nodes, tmp_path, user_home):
    serial_home, serial_lb = serial_run
    executor, stats = run_ray(SUITE, tmp_path / "home", tmp_path / "lb", address=two_nodes.address)
    assert stats.computed == N_CELLS and stats.reused == 0 and not stats.failed
    assert len(executor.placement) == 2 and sum(executor.placement.values()) == N_CELLS  # both nodes computed
    assert metrics(tmp_path / "home" / "results.sqlite") == metrics(serial_home / "results.sqlite")
    ray_board = (tmp_path / "lb" / "ray.md").read_text()
    assert normalise(ray_board) == normalise((serial_lb / "ray.md").read_text())
    assert "## Table II" in ray_board and re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\] n=\d+", ray_board)
    assert_untouched(user_home)


def test_a_worker_killed_mid_cell_is_retried_and_changes_nothing(tmp_path, one_thread, user_home):
    suite = suite_with_plugin(tmp_path / "suite", "crash")
    (tmp_path / "suite" / "crashed").write_text("not this time")  # the uninterrupted reference run
    assert main(["run", str(suite), "--home", str(tmp_path / "ref"), "--out", str(tmp_path / "ref-lb"),
                 "--quiet"]) == 0
    (tmp_path / "suite" / "crashed").unlink()
    executor, stats = run_ray(suite, tmp_path / "home", tmp_path / "lb", num_cpus=2)
    assert (tmp_path / "suite" / "crashed").read_text() != "not this time"  # a worker did die mid-cell
    assert len(executor.retried) == 1 and not stats.failed
    assert stats.computed == N_CELLS + 5  # the user attack: 2 crafts, 3 scored
    assert metrics(tmp_path / "home" / "results.sqlite") == metrics(tmp_path / "ref" / "results.sqlite")
    board, ref = (tmp_path / "lb" / "ray.md").read_text(), (tmp_path / "ref-lb" / "ray.md").read_text()
    assert normalise(board) == normalise(ref)
    assert executor.temp_dir is not None and not Path(executor.temp_dir).exists()  # Ray's files: gone
    assert_untouched(user_home)


def test_a_killed_driver_loses_only_the_cells_in_flight(tmp_path, one_thread, user_home):
    suite = suite_with_plugin(tmp_path / "suite", "gate")
    home, db = tmp_path / "home", tmp_path / "home" / "results.sqlite"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk-"))  # the killed driver's Ray files stay behind: removed below
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TMPDIR": str(ray_tmp)}
    driver = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--executor", "ray", "--home",
                               str(home), "--quiet"], env=env, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and driver.poll() is None:
            if db.is_file() and _stored(db) >= N_CELLS + 5 - 3:  # all but the gated craft and its scored cells
                break
            time.sleep(0.5)
        assert driver.poll() is None, driver.stderr.read().decode()
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.stderr.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    stored = _stored(db)
    assert N_CELLS + 5 - 3 <= stored < N_CELLS + 5  # the gated craft (and what needs it) was not stored
    (tmp_path / "suite" / "gate").write_text("open")
    assert main(["run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet"]) == 0  # serial
    killed, rerun = runs(db)
    assert killed[2] == "abandoned"  # the killed driver never finished its run; the rerun found its process gone
    assert rerun == (N_CELLS + 5 - stored, stored, "finished")  # only the cells that were not stored were computed
    assert_untouched(user_home)


def _stored(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    finally:
        con.close()


def test_a_cell_that_fails_on_its_input_fails_alone(tmp_path, capsys, one_thread, user_home):
    suite = suite_with_plugin(tmp_path / "suite", "broken")
    home = tmp_path / "home"
    code = main(["run", str(suite), "--executor", "ray", "--home", str(home), "--out", str(tmp_path / "lb"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"5 of {N_CELLS + 5} cells failed" in err
    failed = [li for li in err.splitlines() if li.startswith("  ")]
    crafts = [li for li in failed if li.lstrip().startswith("craft ")]
    assert len(crafts) == 2 and all("attack_key=user" in li and "plugin.py:fgsm" in li for li in crafts), err
    scored = [li for li in failed if li.lstrip().startswith("attack ")]
    assert len(scored) == 3 and all("not run: it needs craft" in li for li in scored), err
    assert _stored(home / "results.sqlite") == N_CELLS  # every other cell computed and stored
    assert runs(home / "results.sqlite")[-1] == (N_CELLS, 0, "failed")
    assert not (tmp_path / "lb").exists()  # no leaderboard from a failed run
    logs = err.split("Ray's logs: ")[1].split(")")[0]
    assert Path(logs).is_dir()  # kept for a look when cells failed
    shutil.rmtree(logs)
    assert_untouched(user_home)


def test_ray_options_need_the_ray_executor(tmp_path, capsys):
    for flags in (["--address", "auto"], ["--num-gpus-per-cell", "0.5"], ["--cpus-per-cell", "2"]):
        assert main(["run", str(SUITE), "--home", str(tmp_path / "home"), "--quiet", *flags]) == 2
        assert "need --executor ray" in capsys.readouterr().err
    assert main(["run", str(SUITE), "--executor", "ray", "--num-gpus-per-cell", "-1", "--home",
                 str(tmp_path / "home"), "--quiet"]) == 2
    assert "--num-gpus-per-cell: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # refused before anything was written
