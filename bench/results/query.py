"""The query layer: a suite's stored results as pandas DataFrames, from the results store alone.

Every run stores its suite (as resolved) and its plan, so `load_results(store, suite, profile)` needs no
data folder, checkpoint or user code. Frames (one row per cell, in plan order):

- `variants`: each model as evaluated (plain or defended) with its clean metrics (Table I) and its
  input-gradient norms (through the defense's forward for a defended variant);
- `attacks`: each attack cell (role "attack": the suite's; "control"; "check") with its attack's declarations,
  parameters, threat model, source, target,
  adaptive flag, metrics, and its craft cell's metrics (norms before scoring, `unchanged`, time);
- `models`: each model with its gradient-norm metrics;
- `sections`: cells of optional sections (DIP, cross-checks) with their payload and metrics;
- `predictions(keys)`: per-image predictions of cells (with, for attack cells, the per-image L2 of the scored
  image, `l2`, and of the attack's output before storage, `l2_before`; missing where not recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.results.integrity import damaged_database
from bench.results.store import CellResult, ResultStore
from bench.suite.loaded import LoadedSuite
from bench.suite.plan import AttackCell, Plan


@dataclass
class Results:
    """A suite's results: what was planned (suite, plan), what the store holds, as frames."""

    ls: LoadedSuite
    plan: Plan
    run: dict[str, Any] | None
    variants: pd.DataFrame
    attacks: pd.DataFrame
    models: pd.DataFrame
    sections: pd.DataFrame
    store: ResultStore = field(repr=False)

    @property
    def missing(self) -> int:
        """Cells of Tables I and II with no stored result."""
        return int(self.variants["metrics"].isna().sum() + self.attacks["metrics"].isna().sum())

    def predictions(self, keys: list[str]) -> pd.DataFrame:
        """Per-image predictions of the given cells: cell_key, image_id, label, p_real, l2 and l2_before (the
        perturbation after and before storage of an attack cell; NaN where the cell recorded none: a clean cell,
        or one stored before the norms were recorded)."""
        rows = [(k, i, *row) for k in keys for i, row in self.store.predictions_with_norms(k).items()]
        frame = pd.DataFrame(rows, columns=["cell_key", "image_id", "label", "p_real", "l2", "l2_before"])
        return frame.astype({"l2": float, "l2_before": float})


def _metrics(r: CellResult | None) -> dict | None:
    return r.metrics if r is not None else None


def attack_row(c: AttackCell, metrics: dict | None, craft_metrics: dict | None,
               device: str | None = None) -> dict[str, Any]:
    """One row of the attack frame: the cell's attack (with its declarations), roles and stored metrics."""
    a = c.attack
    return {
        "key": c.key, "attack_key": a.key, "attack": a.attack, "title": a.title, "family": a.family,
        "norm": a.norm, "budget": a.budget, "budget_value": a.budget_value, "deterministic": a.deterministic,
        "backend": a.backend, "params": a.params, "label": a.label, "in_table": a.in_table,
        "varying": a.varying, "source": c.source.name, "target": c.target.name,
        "target_label": c.target.label, "defended": c.target.defense is not None, "threat": c.threat,
        "adaptive": c.adaptive, "role": a.role, "images": a.images, "storage_aware": a.storage_aware,
        "craft_key": c.craft.key, "reference": a.reference, "metrics": metrics,
        "craft_metrics": craft_metrics,
        "device": device,
    }


def results_from(store: ResultStore, ls: LoadedSuite, plan: Plan) -> Results:
    """Frames of a suite's plan, filled from the store."""
    get = store.get
    variants = []
    for v in plan.variants.values():
        clean = plan.cleans[v.name]
        g = plan.gradnorms.get(v.name)
        variants.append({"name": v.name, "label": v.label, "model": v.model, "defense": v.defense,
                         "clean_key": clean.key, "metrics": _metrics(get(clean.key)),
                         "gradnorm": _metrics(get(g.key)) if g else None})
    crafts = {k: get(k) for k in plan.crafts}
    attacks = []
    for c in plan.attacks:
        r = get(c.key)
        attacks.append(attack_row(c, _metrics(r), _metrics(crafts.get(c.craft.key)), r.device if r else None))
    models = []
    for name, mc in plan.models.items():
        g = plan.gradnorms.get(name)
        rm = mc.model
        models.append({"name": name, "label": rm.label, "base": rm.base, "config_label": rm.config.label,
                       "training_defense": rm.training_defense[0] if rm.training_defense else None,
                       "key": mc.key, "gradnorm": _metrics(get(g.key)) if g else None})
    sections = []
    for s in plan.sections:
        r = get(s.key)
        sections.append({"kind": s.kind, "key": s.key, "payload": s.payload, "metrics": _metrics(r),
                         "device": r.device if r else None})
    run = store.latest_run(ls.suite.name, ls.profile)
    cols = {"variants": ["name", "label", "model", "defense", "clean_key", "metrics", "gradnorm"],
            "sections": ["kind", "key", "payload", "metrics", "device"]}
    return Results(ls, plan, run, pd.DataFrame(variants, columns=cols["variants"]), pd.DataFrame(attacks),
                   pd.DataFrame(models), pd.DataFrame(sections, columns=cols["sections"]), store)


def stored_suite(store: ResultStore, suite: str, profile: str | None) -> tuple[LoadedSuite, Plan]:
    """The suite and plan of the latest finished run of `suite` (and `profile`) in the store."""
    run = store.latest_run(suite, profile, with_plan=True)
    if run is None:
        tag = f"{suite} (profile {profile})" if profile else suite
        raise BenchError(str(store.path), f"no finished run of suite {tag} in this store: run `bench run` first")
    try:
        return LoadedSuite.from_dict(run["plan"]["suite"]), Plan.from_dict(run["plan"]["plan"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a plan that is JSON, but not a plan
        if run.get("seal"):  # the run matches its seal (checked on reading it): intact, from another bench
            raise BenchError(str(store.path), f"run {run['run_id']} was stored by another version of bench (commit "
                                              f"{run.get('git_commit') or 'unrecorded'}) whose plan this one cannot "
                                              f"read ({type(exc).__name__}: {_first_line(exc)}); render it with that "
                                              "version, or `bench run` the suite with this one") from None
        raise damaged_database(store.path, f"the plan of run {run['run_id']} does not decode "
                                           f"({type(exc).__name__}: {str(exc)[:200]})") from None


def load_results(store: ResultStore, suite: str, profile: str | None) -> Results:
    """The latest finished run's results of a suite, from the store alone."""
    ls, plan = stored_suite(store, suite, profile)
    return results_from(store, ls, plan)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[:2])[:200] if text else type(exc).__name__
