"""The Ray executor against the serial one on the quick profile, and the critical path of the full suite.

Part 1 (`time`): `bench run SUITE --profile quick` twice from empty homes, side by side: serially (torch with
the machine's threads, 2 here) and with `--executor ray` (a local Ray, one worker per core, one thread per
cell). Wall times of the whole command, the load average around each run (the machine is shared), and
whether the stored numbers agree.

Part 2 (`analyse`): from the stored cell durations of a run (`--durations-from`), the quick profile's work and
critical path; then the paper's full suite (no profile): its plan is built (nothing is computed) and each cell
is timed on one H200: CW-L2 crafts and the DIP cell from their H200 measurements at the full settings
(seconds per image, benchmarks/RESULTS.md); every other cell as its quick counterpart's stored CPU time,
scaled by the work ratio (images x pixels x epochs, from the two suites' settings) and divided by the DIP
engine's measured CPU-to-H200 speed-up (an assumption for those kinds). Printed: the critical path with the
cells on it, and the ideal wall time on 1, 4, 16 and 64 GPUs (the bound max(path, work / G), and a list
schedule, longest remaining path first, one cell per GPU).

    python benchmarks/ray_executor.py time --out /tmp/ray-bench      # about 2 x 10 minutes on 2 cores
    python benchmarks/ray_executor.py analyse --out /tmp/ray-bench
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suites" / "paper.yaml"

# Measured on one H200 at the full suite's settings (benchmarks/RESULTS.md), seconds per image: Foolbox CW-L2 at
# kappa 200, c in [1e2, 1e4], 5 x 1,000 iterations (ResNet-18, 64 px, 32 images a batch); DIP, 10,000 iterations
# (64 px, 64 images a batch).
H200_S_PER_IMAGE = {"cw_l2": 1.018, "dip": 1.60}
DIP_H200_S_PER_IMAGE_ITERATION = 1.60 / 10_000  # the same DIP measurement, per image and DIP iteration
# Training, scoring and FGSM were not measured on the H200: their CPU times are divided by the speed-up measured
# for the DIP engine (CPU 2 threads, batch 40: 2.85 ms per image-iteration; H200 batch 256: 0.13), the conv-net
# forward and backward passes most like theirs. A stated assumption, not a measurement.
CPU_TO_GPU = 2.85 / 0.13


def load() -> float:
    return os.getloadavg()[0]


def stored_count(db: Path) -> int:
    if not db.is_file():
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    finally:
        con.close()


def run_cmd(args: list[str], home: Path, limit_s: float, suite: Path, profile: str | None,
            threads: int | None = None) -> dict:
    """`bench run` of the quick profile from an empty home; stopped (and reported so) after `limit_s`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_HOME": str(home), "MPLCONFIGDIR": str(home / "mpl"),
           "ART_DATA_PATH": str(home / "art")}
    env.pop("OMP_NUM_THREADS", None)  # serial: torch's default, one thread per core; Ray sets its workers' own
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    before = load()
    t0 = time.perf_counter()
    prof = ["--profile", profile] if profile else []
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), *prof, "--home",
                             str(home), "--out", str(home / "lb"), "--quiet", *args], env=env, cwd=home,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: stored cells stay stored
        stdout, stderr = proc.communicate(timeout=120)
        return {"args": args, "finished": False, "wall_s": time.perf_counter() - t0, "load_before": before,
                "load_after": load(), "cells_stored": stored_count(home / "results.sqlite")}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench run failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"args": args, "finished": True, "wall_s": wall, "load_before": before, "load_after": load(),
            "cells_stored": stored_count(home / "results.sqlite"), "stdout": stdout.strip().splitlines()[-1]}


RUNS = {"serial": ([], None), "ray": (["--executor", "ray"], None), "serial1": ([], 1)}


def cmd_time(out: Path, order: list[str], limit_s: float, suite: Path, profile: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    timing = out / "timing.json"
    results = json.loads(timing.read_text()) if timing.is_file() else {"cpus": os.cpu_count(), "suite": str(suite),
                                                                        "profile": profile}
    for name in order:
        home = out / name
        home.mkdir(exist_ok=True)
        print(f"{name}: running (load {load():.1f})", flush=True)
        args, threads = RUNS[name]
        results[name] = run_cmd(args, home, limit_s, suite, profile, threads)
        print(f"{name}: {results[name]}", flush=True)
        timing.write_text(json.dumps(results, indent=2))
    for other in ("serial", "serial1"):
        if all((out / n / "results.sqlite").is_file() for n in (other, "ray")):
            results[f"same_numbers_ray_{other}"] = compare(out / other / "results.sqlite",
                                                           out / "ray" / "results.sqlite")
    timing.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def compare(a: Path, b: Path) -> dict:
    """How many cells both runs stored, and how many have the same metrics (timings and paths aside)."""

    def metrics(db: Path) -> dict:
        con = sqlite3.connect(db)
        rows = con.execute("SELECT cell_id, kind, metrics FROM cells").fetchall()
        con.close()
        return {c: (k, {x: v for x, v in json.loads(m).items() if x not in ("seconds_per_image", "path")})
                for c, k, m in rows}

    ma, mb = metrics(a), metrics(b)
    same = [c for c in ma if c in mb and ma[c][1] == mb[c][1]]
    differ = defaultdict(int)
    for c in ma:
        if c in mb and ma[c][1] != mb[c][1]:
            differ[ma[c][0]] += 1
    return {"cells": len(ma), "in_both": len(set(ma) & set(mb)), "same": len(same), "differ_by_kind": dict(differ)}


# ------------------------------------------------------------------ analysis
def stored_cells(db: Path) -> tuple[dict, dict]:
    """(plan of the latest finished run as stored, cell key -> duration in seconds)."""
    con = sqlite3.connect(db)
    plan = json.loads(con.execute("SELECT plan FROM runs WHERE plan IS NOT NULL "
                                  "ORDER BY run_id DESC LIMIT 1").fetchone()[0])
    durations = dict(con.execute("SELECT cell_id, duration_s FROM cells").fetchall())
    con.close()
    return plan, durations


def role(cell) -> tuple:
    """What a cell is, independent of the profile: kind, model or variant, attack entry, source and target."""
    if cell.kind == "model":
        return ("model", cell.model.name)
    if cell.kind in ("clean",):
        return ("clean", cell.variant.name)
    if cell.kind == "gradnorm":
        return ("gradnorm", cell.model)
    if cell.kind == "craft":
        return ("craft", cell.attack.key, cell.source.name)
    if cell.kind == "attack":
        return ("attack", cell.attack.key, cell.source.name, cell.target.name)
    return (cell.kind, cell.payload.get("model"), cell.payload.get("attack"))


def iterations(attack: str, p: dict) -> int:
    """Forward and backward passes per image of one run of an attack (EOT excluded)."""
    if attack == "cw_l2":
        return p.get("binary_search_steps", 1) * p.get("max_iterations", 1)
    if attack == "square":
        return p.get("queries", 1)
    if attack == "ensemble":
        return sum(iterations(m["attack"], m.get("params", {})) for m in p.get("members", {}).values())
    return p.get("steps", 1)


def work(cell, ls, plan) -> float:
    """A cell's work in arbitrary units (images x pixels x passes), for scaling one profile's times to another."""
    s = ls.suite
    px = s.data.size ** 2
    n_test = round(s.data.n * (1 - s.data.train_fraction))
    n_attacked = len(plan.attack_ids)
    if cell.kind == "model":
        return cell.model.config.recipe.epochs * (s.data.n - n_test) * px
    if cell.kind == "clean":
        return n_test * px
    if cell.kind == "gradnorm":
        return cell.n * px
    if cell.kind == "craft":
        images = cell.attack.images or n_attacked  # check attacks run on at most checks.n images
        return images * px * iterations(cell.attack.attack, cell.attack.params) * (cell.attack.restarts or 1)
    if cell.kind == "attack":
        return n_attacked * px
    if cell.kind == "dip":
        d = s.dip
        return (d.per_category + d.calibration_per_category) * d.params.get("iterations", 10000) * px
    if cell.kind == "dip-adaptive":  # a purification per step and EOT sample, at the attack's readout
        pay = cell.payload
        readout = s.dip.params.get("readout", 10000) if pay.get("readout", "calibrated") == "calibrated" \
            else pay["readout"]
        readout = readout if isinstance(readout, int) else s.dip.params.get("iterations", 10000)
        return (pay.get("subset", pay["images"]) * iterations(pay["attack"], pay["params"]) * (pay.get("restarts") or 1)
                * (pay["params"].get("eot") or 1) * readout * px)
    if cell.kind == "crosscheck":
        return cell.payload.get("n", 32) * px * len(cell.payload.get("implementations", [1]))
    return px


def critical_path(cells: list, dur: dict[str, float]) -> tuple[float, list]:
    """Length of the longest dependency chain, and its cells (dependencies first)."""
    by_key = {c.key: c for c in cells}
    finish: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for c in cells:  # dependencies first
        deps = [d for d in c.deps if d in by_key]
        best = max(deps, key=lambda d: finish[d], default=None)
        finish[c.key] = dur[c.key] + (finish[best] if best else 0.0)
        prev[c.key] = best
    end = max(finish, key=finish.get)
    path = []
    k: str | None = end
    while k is not None:
        path.append(by_key[k])
        k = prev[k]
    return finish[end], path[::-1]


def list_schedule(cells: list, dur: dict[str, float], workers: int) -> float:
    """Makespan of the cell graph on `workers` identical devices, one cell each at a time; a ready cell with the
    longest remaining path goes first (a greedy schedule: within 2x of optimal, usually near the bound)."""
    by_key = {c.key: c for c in cells}
    children = defaultdict(list)
    for c in cells:
        for d in c.deps:
            if d in by_key:
                children[d].append(c.key)
    rest: dict[str, float] = {}
    for c in reversed(cells):
        rest[c.key] = dur[c.key] + max((rest[ch] for ch in children[c.key]), default=0.0)
    missing = {c.key: sum(1 for d in c.deps if d in by_key) for c in cells}
    ready = [(-rest[k], k) for k, n in missing.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now, free = 0.0, workers
    while ready or running:
        while ready and free:
            _, k = heapq.heappop(ready)
            heapq.heappush(running, (now + dur[k], k))
            free -= 1
        now, k = heapq.heappop(running)
        free += 1
        for ch in children[k]:
            missing[ch] -= 1
            if missing[ch] == 0:
                heapq.heappush(ready, (-rest[ch], ch))
    return now


def describe_cell(c) -> str:
    r = role(c)
    return f"{r[0]} " + " / ".join(str(x) for x in r[1:] if x)


def per_work(cells: list, dur: dict[str, float], ls, plan) -> tuple[dict, dict]:
    """Measured seconds per unit of work, by role and by kind (a craft's kind includes its attack)."""
    by_role, by_kind = defaultdict(list), defaultdict(list)
    for c in cells:
        if c.key in dur:
            v = dur[c.key] / work(c, ls, plan)
            by_role[role(c)].append(v)
            by_kind[kind_of(c)].append(v)
    mean = lambda d: {k: sum(v) / len(v) for k, v in d.items()}  # noqa: E731
    return mean(by_role), mean(by_kind)


def kind_of(c) -> str:
    return f"craft {c.attack.attack}" if c.kind == "craft" else c.kind


def dip_images(ls, plan) -> int:
    """Images the DIP cell purifies: per category, for 2 unperturbed categories and, for each Table II attack
    and threat on the classifier, the fakes it fooled and those it did not."""
    from bench.dip.protocol import _cells_for  # noqa: PLC0415  (after the thread setting)

    d = ls.suite.dip
    cats = {(c.threat, c.attack.key) for c in _cells_for(plan, d.classifier)}
    return d.per_category * (2 * len(cats) + 2)


def gpu_seconds(c, ls, plan, by_role: dict, by_kind: dict) -> tuple[float, str]:
    """A full-suite cell's time on one H200: measured there (CW-L2, DIP), or CPU-measured and scaled."""
    if c.kind == "craft" and c.attack.attack == "cw_l2":
        return len(plan.attack_ids) * H200_S_PER_IMAGE["cw_l2"], "H200"
    if c.kind == "dip":
        return dip_images(ls, plan) * H200_S_PER_IMAGE["dip"], "H200"
    if c.kind == "dip-adaptive":  # work() counts image-iterations x pixels; the H200 rate is per image-iteration
        return work(c, ls, plan) / ls.suite.data.size ** 2 * DIP_H200_S_PER_IMAGE_ITERATION, "H200 (DIP rate)"
    pw = by_role.get(role(c)) or by_kind.get(kind_of(c))
    if pw is None:  # no cell of this kind was stored: priced as a scoring cell (a forward pass)
        pw = by_kind.get("clean") or by_kind.get("model")
    return pw * work(c, ls, plan) / CPU_TO_GPU, "CPU x work / speed-up"


def cmd_analyse(out: Path, durations_from: str = "serial") -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch  # noqa: PLC0415  (after the thread setting)

    torch.set_num_threads(1)
    from bench.running.runner import prepare  # noqa: PLC0415  (after the thread setting)
    from bench.suite.load import load_suite  # noqa: PLC0415
    from bench.suite.plan import Plan  # noqa: PLC0415

    report = {}
    stored, durations = stored_cells(out / durations_from / "results.sqlite")
    qplan = Plan.from_dict(stored["plan"])
    qcells = qplan.cells()
    qdur = {c.key: durations[c.key] for c in qcells if c.key in durations}
    report["quick"] = {"durations_from": durations_from, "cells": len(qcells), "stored": len(qdur),
                       "work_s": sum(qdur.values()),
                       "stored_by_kind": {k: sum(1 for c in qcells if kind_of(c) == k and c.key in qdur)
                                          for k in sorted({kind_of(c) for c in qcells})}}
    if len(qdur) == len(qcells):
        q_cp, q_path = critical_path(qcells, qdur)
        report["quick"].update({"critical_path_s": q_cp, "ideal_2_workers_s": list_schedule(qcells, qdur, 2),
                                "path": [f"{describe_cell(c)}: {qdur[c.key]:.1f} s" for c in q_path]})
    qls = load_suite(SUITE, "quick")
    by_role, by_kind = per_work(qcells, qdur, qls, qplan)
    fls = load_suite(SUITE)
    fplan = prepare(fls, home=out / "plan-only", quiet=True).plan  # data and plan; nothing is computed or written
    fcells = fplan.cells()
    fdur, how = {}, defaultdict(float)
    for c in fcells:
        fdur[c.key], source = gpu_seconds(c, fls, fplan, by_role, by_kind)
        how[source] += fdur[c.key]
    cp, path = critical_path(fcells, fdur)
    w = sum(fdur.values())
    by_kind_s = defaultdict(float)
    for c in fcells:
        by_kind_s[kind_of(c)] += fdur[c.key]
    report["full"] = {
        "cells": len(fcells), "h200_s_per_image": H200_S_PER_IMAGE, "cpu_to_gpu": CPU_TO_GPU,
        "gpu_work_s": w, "work_by_source_s": dict(how), "work_by_kind_s": dict(by_kind_s),
        "critical_path_s": cp, "path": [f"{describe_cell(c)}: {fdur[c.key]:.0f} s" for c in path],
        "gpus": {g: {"bound_s": max(cp, w / g), "list_schedule_s": list_schedule(fcells, fdur, g)}
                 for g in (1, 4, 16, 64)},
        "largest": [f"{describe_cell(c)}: {fdur[c.key]:.0f} s"
                    for c in sorted(fcells, key=lambda c: -fdur[c.key])[:10]],
    }
    (out / "analysis.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["time", "analyse", "both"], nargs="?", default="both")
    p.add_argument("--out", type=Path, default=Path("/tmp/ray-bench"))
    p.add_argument("--order", nargs="+", default=["serial", "ray"], choices=list(RUNS),
                   help="serial: torch's threads (one per core); serial1: one thread; ray: local Ray")
    p.add_argument("--suite", type=Path, default=SUITE)
    p.add_argument("--profile", default="quick", help="'' for none")
    p.add_argument("--limit-s", type=float, default=3600.0, help="stop a run after this long (it is reported)")
    p.add_argument("--durations-from", default="serial", choices=["serial", "ray"],
                   help="whose stored cell durations the analysis scales")
    args = p.parse_args()
    if args.what in ("time", "both"):
        cmd_time(args.out, args.order, args.limit_s, args.suite.resolve(), args.profile or None)
    if args.what in ("analyse", "both"):
        cmd_analyse(args.out, args.durations_from)


if __name__ == "__main__":
    main()
