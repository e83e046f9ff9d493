"""Which cells a suite has: `build_plan` expands a loaded suite into the plan's cells (models, variants,
scoring, attacks; then `bench.suite.controls` adds the controls and check attacks), each named by
`bench.cells.keys.cell_key` from everything that determines its result; `plan_for_data` does it for a loaded
train/test split."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench import FAKE
from bench.cells.keys import cell_key
from bench.plugins.loader import source_digest
from bench.results.digests import data_digest, digest, file_digest
from bench.suite.controls import add_controls_and_checks
from bench.suite.loaded import LoadedSuite, runs_against
from bench.suite.plan import ModelCell, Plan, Variant, add_attack_cell, add_scoring_cells

if TYPE_CHECKING:  # a data split holds tensors; the plan is read without torch
    from bench.data.dataset import ImageSet


def attacked_indices(test: ImageSet, n_max: int, seed: int) -> np.ndarray:
    """The test fakes that are attacked: a seeded choice of at most `n_max`, in index order."""
    fakes = np.flatnonzero(test.labels.numpy() == FAKE)
    rng = np.random.default_rng([seed, 7])
    chosen = fakes[rng.permutation(len(fakes))[:n_max]]
    return np.sort(chosen)


def build_plan(ls: LoadedSuite, data_key: str, attack_ids: list[str]) -> Plan:
    """The suite's cells for data named by `data_key`, attacking the test fakes `attack_ids`."""
    s = ls.suite
    plan = Plan(data_key=data_key, attack_ids=list(attack_ids))

    def model_key(name: str) -> str:
        if name in plan.models:
            return plan.models[name].key
        rm = ls.models[name]
        cfg = rm.config.model_dump(exclude={"label", "defense", "baseline", "seeds", "attacks"})  # what training reads
        deps: tuple[str, ...] = ()
        if rm.config.checkpoint:
            cfg["checkpoint"] = file_digest(ls.base_dir / rm.config.checkpoint)
        if rm.config.init_from:
            cfg["init_from"] = model_key(rm.config.init_from)
            deps = (cfg["init_from"],)
        defense_src = source_digest(rm.training_defense[0], ls.base_dir) if rm.training_defense else None
        seed = s.seed + rm.replica  # the training seed: replicas differ (bench.suite.replicas)
        key = cell_key("model", cfg, rm.training_defense, defense_src, data_key, seed, s.data.size)
        plan.models[name] = ModelCell(rm, key, deps)
        return key

    for name in ls.models:
        model_key(name)
        plan.variants[name] = Variant(name, name, None, plan.models[name].key, ls.models[name].label)
    for dname, d in s.defenses.items():
        use = d.use
        src = source_digest(use, ls.base_dir)
        for m in d.applies_to:
            vname = f"{m}+{dname}"
            key = digest(["variant", plan.models[m].key, use, d.params, src])
            label = f"{ls.models[m].label} + {d.label or dname}"
            plan.variants[vname] = Variant(vname, m, dname, key, label)
    ev = s.evaluation
    add_scoring_cells(plan, ev.gradient_norm_images, min(ev.gradient_norm_images, ev.checks.n))

    pairs: list[tuple[str, str, str]] = []  # (source variant, target variant, threat)
    if s.threat_models.white_box:
        for v in plan.variants.values():
            pairs.append((v.model, v.name, "white-box"))
            if v.defense and s.defenses[v.defense].adaptive:
                pairs.append((v.name, v.name, "white-box"))
    for src, dst in s.threat_models.transfer:
        for v in plan.variants.values():
            if v.model == dst:
                pairs.append((src, v.name, "transfer"))
    for ap in ls.attacks:
        for src, dst, threat in pairs:  # a model's `attacks` and an entry's `models` may restrict who meets whom
            if runs_against(ls, ap.key, plan.variants[src].model) and runs_against(ls, ap.key,
                                                                                   plan.variants[dst].model):
                add_attack_cell(plan, ls, ap, src, dst, threat)
    add_controls_and_checks(plan, ls)
    return plan


def plan_for_data(ls: LoadedSuite, train: ImageSet, test: ImageSet) -> Plan:
    """The suite's plan for a loaded train/test split (its digest and the seeded choice of attacked fakes)."""
    s = ls.suite
    idx = attacked_indices(test, s.evaluation.max_attack_images, s.seed)
    return build_plan(ls, data_digest(train, test), [test.ids[i] for i in idx])
