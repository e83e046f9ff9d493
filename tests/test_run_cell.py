"""One way to run a cell: the serial executor's `run_cell` and a Ray worker's `compute_remote` (called here
in-process, without Ray) seed and compute a cell alike, and the driver stores the worker's result as the serial
executor stores its own."""

from __future__ import annotations

import pickle
from pathlib import Path

from bench.cells.remote import ContextSpec, compute_remote, context_for
from bench.cells.run import run_cell, store_computed
from bench.results.store import ResultStore

SUITE = Path(__file__).parent / "suites" / "ray.yaml"


def test_a_worker_computes_and_the_driver_stores_a_cell_as_the_serial_executor_does(tmp_path: Path, one_thread):
    serial_spec = ContextSpec(str(SUITE.resolve()), None, {}, str(tmp_path / "serial"))
    ctx = context_for(serial_spec)
    cell = next(c for c in ctx.plan.cells() if c.kind == "model")
    serial = ResultStore(tmp_path / "serial.sqlite")
    done = run_cell(cell, ctx, serial, serial.start_run("ray", None))

    worker_spec = ContextSpec(str(SUITE.resolve()), None, {}, str(tmp_path / "worker"))
    out = pickle.loads(pickle.dumps(compute_remote(worker_spec, cell.key)))  # as Ray returns it
    assert out.error is None and out.computed is not None
    driver = ResultStore(tmp_path / "driver.sqlite")
    store_computed(driver, cell, context_for(worker_spec), out.computed, driver.start_run("ray", None))

    a, b = serial.get(cell.key), driver.get(cell.key)
    assert a is not None and b is not None
    assert a.metrics["losses"] == b.metrics["losses"] == done.record.metrics["losses"]


def test_a_cell_not_in_the_workers_plan_fails_with_a_message(tmp_path: Path):
    out = compute_remote(ContextSpec(str(SUITE.resolve()), None, {}, str(tmp_path)), "0" * 64)
    assert out.computed is None and out.error is not None and "not in this worker's plan" in out.error[1]
