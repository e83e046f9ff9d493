"""A suite run: load the data, build the plan (with its optional sections), check every input before
anything is written (preflight), then let an executor compute the cells against the results store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.cells.context import RunContext
from bench.data.sources import load_data
from bench.defenses.apply import apply_defense
from bench.models.registry import create_model
from bench.results.provenance import git_commit, machine, package_versions
from bench.results.store import ResultStore
from bench.running.executor import RunStats, SerialExecutor, select_cells
from bench.running.runs import mark_abandoned, record_owner
from bench.sections import add_section_cells, section_of
from bench.settings import default_home
from bench.suite.loaded import LoadedSuite
from bench.suite.plan import Plan
from bench.suite.planner import plan_for_data


def prepare(ls: LoadedSuite, home: Path | None = None, device: torch.device | None = None,
            quiet: bool = False) -> RunContext:
    """Data, plan and context of a suite; every check that can fail on bad input runs here (preflight)."""
    s = ls.suite
    train, test = load_data(s.data, s.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    add_section_cells(ls, plan)
    ctx = RunContext(ls, train, test, plan, Path(home or default_home()), device or torch.device("cpu"), quiet)
    preflight(ctx)
    return ctx


def probe_calibration(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random images, one per class: what a defense that needs calibration calibrates on in the preflight
    (around an untrained model, only to exercise its contract)."""
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])


def preflight(ctx: RunContext) -> None:
    """User checkpoints load and pass their checks; every evaluation-time defense passes its full contract
    (differentiability included) around an untrained model of the same architecture."""
    plan, s = ctx.plan, ctx.suite
    for name, mc in plan.models.items():
        if mc.model.config.checkpoint:
            ctx.detector(name)
    for v in plan.variants.values():
        if v.defense is None:
            continue
        cfg = plan.models[v.model].model.config
        probe = ctx.loaded(v.model) or create_model(
            cfg.arch, s.data.size, cfg.mean, cfg.std, where=f"models.{v.model}")
        d = s.defenses[v.defense]
        apply_defense(probe.to(ctx.device), v.defense, d.use, d.params, ctx.ls.base_dir, check_contract=True,
                      calibration=lambda: probe_calibration(s.data.size))


def stored_plan(ls: LoadedSuite, plan: Plan) -> dict[str, Any]:
    """What a run stores about itself: the suite as resolved and its plan (see `bench.results`)."""
    return {"suite": ls.as_dict(), "plan": plan.as_dict()}


def shard_filter(shard: tuple[int, int] | None) -> Callable[[Any], bool]:
    """With `--shard K/N`, the cells of shard K: by craft for attacks (each set of adversarial examples is
    made by exactly one shard), the first shard for sections that need every craft, no shard for sections
    that run unsharded only."""
    if shard is None:
        return lambda cell: True
    k, n = shard

    def mine(cell: Any) -> bool:
        if cell.kind == "attack":
            return int(cell.craft.key[:15], 16) % n == k
        if cell.kind in ("model", "craft"):
            return False  # made when a cell of this shard needs them
        sec = section_of(cell.kind)
        if sec is not None:
            return sec.sharded == "first" and k == 0
        return int(cell.key[:15], 16) % n == k

    return mine


def run_suite(ctx: RunContext, store: ResultStore, force: bool = False, shard: tuple[int, int] | None = None,
              executor: SerialExecutor | None = None, stats: RunStats | None = None) -> RunStats:
    """Compute (or reuse) the suite's cells; the run, its plan and its status are recorded in the store."""
    t0 = time.perf_counter()
    ls = ctx.ls
    stats = stats if stats is not None else RunStats()
    executor = executor or SerialExecutor(quiet=ctx.quiet, force=force)
    mark_abandoned(store.db)  # runs left `running` by a dead process (the caller holds the home lock)
    run_id = store.start_run(ls.suite.name, ls.profile, git_commit=git_commit(), versions=package_versions(),
                             seed=ls.suite.seed, device=str(ctx.device), overrides=ls.overrides, machine=machine())
    record_owner(store.db, run_id)
    store.set_plan(run_id, stored_plan(ls, ctx.plan))
    status = "failed"
    try:
        cells = ctx.plan.cells()
        if shard is None:
            todo = cells
        else:
            todo = select_cells(cells, ctx, store, force, shard_filter(shard))
        executor.run(todo, ctx, store, run_id, stats, desc=f"cells ({ls.tag})")
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        stats.seconds = time.perf_counter() - t0
        try:
            store.finish_run(run_id, stats.computed, stats.reused, status, cells=[c.key for c in ctx.plan.cells()])
        except sqlite3.Error:  # a full or read-only disk: the error that brought us here is the one to report
            if status == "finished":
                raise
    return stats


__all__ = ["RunStats", "prepare", "preflight", "run_suite", "shard_filter", "stored_plan"]
