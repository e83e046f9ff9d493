"""Training replicas: a suite with `seeds: N` trains every model N times, replica r with seed `suite.seed + r`
(a model's own `seeds` overrides N for it: an expensive model may have fewer).

Expansion happens when the suite is loaded, so the plan and the executors see ordinary models: replica 0 keeps
the model's name (a one-seed suite is unchanged, and sections that name one model use replica 0), replica r >= 1
is named `<name>@seed<r>`. References between models expand replica-wise: `init_from`, `defenses.applies_to`
and `threat_models.transfer` pair replica r with replica r (a transfer pair for the replicas both models have;
a model may not have more replicas than the model it starts from).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.errors import BenchError
from bench.suite.loaded import LoadedSuite

REPLICA_MARK = "@seed"  # safe in file names and cell keys; not a character grid expansion produces


def replica_name(name: str, replica: int) -> str:
    """The name of replica `replica` of model `name` (replica 0 keeps the plain name)."""
    return name if replica == 0 else f"{name}{REPLICA_MARK}{replica}"


def model_seeds(ls: LoadedSuite, name: str) -> int:
    """How many training replicas resolved model `name` (replica 0's name) has."""
    return ls.models[name].config.seeds or ls.suite.seeds


def expand_replicas(ls: LoadedSuite) -> None:
    """Add replicas 1..seeds-1 of every resolved model after it, and expand the suite's references to models
    (defenses' `applies_to`, transfer pairs) replica-wise. A no-op when every model has one seed."""
    s = ls.suite
    seeds = {name: model_seeds(ls, name) for name in ls.models}
    for name, rm in ls.models.items():
        src = rm.config.init_from
        if src in seeds and seeds[name] > seeds[src]:  # an init_from naming a grid is refused after expansion
            raise BenchError(f"models.{rm.base}.seeds", f"{seeds[name]} training seeds, but {src} (init_from) has "
                             f"{seeds[src]}: replica r starts from replica r of {src}")
    if max(seeds.values(), default=1) == 1:
        return
    models = {}
    for name, rm in ls.models.items():
        models[name] = rm
        for r in range(1, seeds[name]):
            cfg = rm.config
            if cfg.init_from:
                cfg = cfg.model_copy(update={"init_from": replica_name(cfg.init_from, r)})
            label = f"{rm.label} (seed {r})"
            models[replica_name(name, r)] = dataclasses.replace(rm, name=replica_name(name, r), config=cfg,
                                                                label=label, replica=r, group=name)
    ls.models = models
    defenses = {dname: d.model_copy(update={"applies_to": [replica_name(m, r) for m in d.applies_to
                                                           for r in range(seeds[m])]})
                for dname, d in s.defenses.items()}
    transfer = [(replica_name(a, r), replica_name(b, r)) for a, b in s.threat_models.transfer
                for r in range(min(seeds[a], seeds[b]))]
    threat = s.threat_models.model_copy(update={"transfer": transfer})
    ls.suite = s.model_copy(update={"defenses": defenses, "threat_models": threat})


def replica_columns(plan: Any, model: str | None) -> dict[str, Any]:
    """The typed store columns `seed` (training replica) and `model_group` of a cell about `model` of `plan`
    (None for a cell about no model of the plan)."""
    mc = plan.models.get(model) if model else None
    if mc is None:
        return {"seed": None, "model_group": None}
    return {"seed": mc.model.replica, "model_group": mc.model.group_name}
