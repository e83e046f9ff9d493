"""The Ray executor: a plan's cell graph as Ray tasks, in dependency order, as many at once as resources allow.

Each task asks for `cpus_per_cell` CPUs (and `num_gpus_per_cell` GPUs, fractions allowed), rebuilds the run's
context on its worker from plain data (`bench.cells.remote`), computes ONE cell as every executor does
(`bench.cells.run.compute_cell`: seeded from its key), and returns its outcome; the driver alone writes the
results store (`bench.cells.run.store_computed`), as each cell finishes (killing the driver loses at most the
cells in flight; a rerun, serial or Ray, reuses the rest). A task whose worker died is retried (`max_retries`);
a cell that fails on its input fails with its message, the cells that need it are not run, every other cell
goes on, and the run ends with `CellsFailed` naming them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from tqdm.auto import tqdm

from bench.cells.artifacts import discard_unverified
from bench.cells.context import RunContext
from bench.cells.remote import CellOutcome, ContextSpec, compute_remote
from bench.cells.run import store_computed
from bench.distributed.session import check_address, ray_session
from bench.distributed.tracker import start_tracker
from bench.errors import BenchError
from bench.results.store import ResultStore
from bench.running.executor import RunStats, cell_done

POLL_S = 1.0  # how often the progress bar's "where" is refreshed while cells run


class CellsFailed(BenchError):
    """Some cells failed (the others were computed and stored): exit status 1."""

    exit_code = 1


def run_cell_task(spec: dict[str, Any], key: str, tracker: Any) -> CellOutcome:
    """The Ray task: report where it runs, then compute one cell."""
    tracker.started.remote(key, ray.get_runtime_context().get_node_id())
    return compute_remote(ContextSpec(**spec), key)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cell_name(cell: Any) -> str:
    """A cell as a person reads it: kind, what it is about, and its key's prefix."""
    d = cell.describe()
    what = ", ".join(f"{k}={d[k]}" for k in ("model", "variant", "attack_key", "source", "target") if d.get(k))
    return f"{cell.kind} {cell.key[:12]}" + (f" ({what})" if what else "")


class RayExecutor:
    """Computes cells as Ray tasks on a local Ray instance (`address` None) or a cluster ("auto", HOST:PORT)."""

    def __init__(self, address: str | None = None, num_gpus_per_cell: float | None = None, cpus_per_cell: int = 1,
                 num_cpus: int | None = None, max_retries: int = 3, quiet: bool = False, force: bool = False) -> None:
        if num_gpus_per_cell is not None and not (math.isfinite(num_gpus_per_cell) and num_gpus_per_cell >= 0):
            raise BenchError("--num-gpus-per-cell", f"must be >= 0 (a finite number), got {num_gpus_per_cell}")
        if cpus_per_cell < 1:
            raise BenchError("cpus_per_cell", f"must be >= 1, got {cpus_per_cell}")
        check_address(address)  # before the run writes anything
        self.address = address
        self.num_gpus_per_cell = num_gpus_per_cell
        self.cpus_per_cell = cpus_per_cell
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.quiet = quiet
        self.force = force
        self.placement: Counter[str] = Counter()  # node label -> cells computed there
        self.retried: list[str] = []  # cells started more than once (their worker died)
        self.failures: dict[str, str] = {}  # cell key -> why it failed
        self.temp_dir: str | None = None

    def gpus(self, ctx: RunContext) -> float:
        """GPUs per cell: as asked, else one when the run's device is CUDA, else none."""
        if self.num_gpus_per_cell is not None:
            return float(self.num_gpus_per_cell)
        return 1.0 if ctx.device.type == "cuda" else 0.0

    def run(self, cells: Iterable, ctx: RunContext, store: ResultStore, run_id: int, stats: RunStats,
            desc: str = "cells") -> RunStats:
        cells = list(cells)
        gpus = self.gpus(ctx)
        spec = ContextSpec.of(ctx, "cuda" if gpus > 0 else "cpu", self.cpus_per_cell).as_dict()
        with ray_session(self.address, self.num_cpus, self.cpus_per_cell) as session:
            self.temp_dir = session.temp_dir
            self._schedule(cells, ctx, store, run_id, stats, desc, spec, gpus)
            if self.failures:
                self._raise_failed(cells)  # inside the session: a local instance keeps its logs for a look
        return stats

    # ------------------------------------------------------------------ the scheduling loop
    def _schedule(self, cells: list, ctx: RunContext, store: ResultStore, run_id: int, stats: RunStats, desc: str,
                  spec: dict[str, Any], gpus: float) -> None:
        task = ray.remote(run_cell_task).options(num_cpus=self.cpus_per_cell, num_gpus=gpus,
                                                 max_retries=self.max_retries, retry_exceptions=False)
        tracker = start_tracker()
        labels = NodeLabels()
        by_key = {c.key: c for c in cells}
        done: set[str] = set()
        waiting: list = []
        bar = tqdm(total=len(cells), desc=desc, disable=self.quiet)
        for cell in cells:
            if cell_done(cell, ctx, store, self.force):
                done.add(cell.key)
                stats.reused += 1
                bar.update(1)
            else:
                waiting.append(cell)
        in_flight: dict[ray.ObjectRef, Any] = {}
        try:
            while waiting or in_flight:
                still = []
                for cell in waiting:  # submit every cell whose dependencies are done; fail those that need a failure
                    deps = [d for d in cell.deps if d in by_key]
                    bad = next((d for d in deps if d in self.failures), None)
                    if bad is not None:
                        self._fail(cell, f"not run: it needs {cell_name(by_key[bad])}, which failed", stats)
                        bar.update(1)
                    elif all(d in done for d in deps):
                        discard_unverified(cell, ctx)
                        in_flight[task.remote(spec, cell.key, tracker)] = cell
                    else:
                        still.append(cell)
                waiting = still
                if not in_flight:
                    for cell in waiting:  # unreachable: a dependency that is neither done nor failed nor queued
                        self._fail(cell, "not run: a dependency was never computed", stats)
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                starts = ray.get(tracker.snapshot.remote())
                for ref in ready:
                    cell = in_flight.pop(ref)
                    node = starts.get(cell.key, ["?"])[-1]
                    if len(starts.get(cell.key, [])) > 1:
                        self.retried.append(cell.key)
                    self._finish(cell, ref, ctx, store, run_id, stats, labels.of(node))
                    if cell.key not in self.failures:
                        done.add(cell.key)
                    bar.update(1)
                bar.set_postfix_str(self._where(in_flight, starts, labels), refresh=False)
        except KeyboardInterrupt:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        if not self.quiet:
            where = ", ".join(f"{n}: {k}" for n, k in sorted(self.placement.items()))
            tqdm.write(f"ray: {stats.computed} cells computed ({where or 'none'}), {len(self.retried)} retried after "
                       f"their worker died, {len(self.failures)} failed")

    def _finish(self, cell: Any, ref: ray.ObjectRef, ctx: RunContext, store: ResultStore, run_id: int,
                stats: RunStats, node: str) -> None:
        """Store a finished cell's result (the driver is the store's only writer), or record its failure."""
        try:
            out: CellOutcome = ray.get(ref)
        except RayTaskError as exc:  # the task could not start its cell (e.g. bench missing on that node)
            cause = getattr(exc, "cause", None) or exc
            self._fail(cell, f"failed on its worker: {first_line(cause)}", stats, str(exc))
            return
        except RayError as exc:  # the worker died on every attempt, or the task was lost with its node
            self._fail(cell, f"its worker died ({1 + self.max_retries} attempts): {type(exc).__name__}: "
                             f"{first_line(exc)}", stats)
            return
        if out.error is not None:
            where, message = out.error
            self._fail(cell, f"{where}: {message}" if where else message, stats, out.traceback)
            return
        assert out.computed is not None  # no error: the worker computed it
        store_computed(store, cell, ctx, out.computed, run_id)
        stats.computed += 1
        self.placement[node] += 1

    def _fail(self, cell: Any, why: str, stats: RunStats, trace: str | None = None) -> None:
        self.failures[cell.key] = why
        stats.failed.append(cell.key)
        if trace and not self.quiet:
            tqdm.write(f"{cell_name(cell)} failed:\n{trace}")

    def _where(self, in_flight: dict, starts: dict[str, list[str]], labels: NodeLabels) -> str:
        """How many cells run where, e.g. `running 3 (node1 2, node2 1), queued 4`."""
        running = Counter(labels.of(starts[c.key][-1]) for c in in_flight.values() if c.key in starts)
        queued = len(in_flight) - sum(running.values())
        where = ", ".join(f"{n} {k}" for n, k in sorted(running.items()))
        text = f"running {sum(running.values())}" + (f" ({where})" if where else "") + f", queued {queued}"
        return text + (f", failed {len(self.failures)}" if self.failures else "")

    def _raise_failed(self, cells: list) -> None:
        by_key = {c.key: c for c in cells}
        lines = [f"{cell_name(by_key[k])}: {why}" for k, why in self.failures.items()]
        keep = f"; Ray's logs: {self.temp_dir}" if self.temp_dir else ""
        raise CellsFailed("run", f"{len(self.failures)} of {len(cells)} cells failed (the others are stored; "
                                 f"a rerun computes only what is missing{keep}):\n  " + "\n  ".join(lines))


class NodeLabels:
    """Short names for the cluster's nodes: the host name, numbered when several nodes share one."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        nodes = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: n["NodeID"])
        hosts = Counter(n["NodeManagerHostname"] for n in nodes)
        seen: Counter[str] = Counter()
        for n in nodes:
            host = n["NodeManagerHostname"]
            seen[host] += 1
            self.names[n["NodeID"]] = host if hosts[host] == 1 else f"{host}#{seen[host]}"

    def of(self, node_id: str) -> str:
        return self.names.get(node_id, node_id[:8])


__all__ = ["CellsFailed", "NodeLabels", "RayExecutor", "cell_name", "run_cell_task"]
