"""A suite expanded into cells, each named by a hash of everything that determines its result.

The runner computes the plan's cells; the report looks the same cells up in the store. Both build
the plan the same way, so the leaderboard is always rendered from the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import FAKE
from bench.data.dataset import ImageSet
from bench.suite.load import AttackPoint, LoadedSuite, ResolvedModel

PLAN_VERSION = 1  # bump when the meaning of a cell changes, so old results are not reused


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_digest(train: ImageSet, test: ImageSet) -> str:
    h = hashlib.sha256()
    for part in (train, test):
        h.update((part.images * 255).round().to(torch.uint8).numpy().tobytes())
        h.update(part.labels.numpy().tobytes())
        h.update("\n".join(part.ids).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCell:
    model: ResolvedModel
    key: str


@dataclass(frozen=True)
class Variant:
    """A model as evaluated: plain, or with an evaluation-time defense."""

    name: str
    model: str
    defense: str | None
    key: str
    label: str


@dataclass(frozen=True)
class CraftCell:
    attack: AttackPoint
    source: Variant
    key: str


@dataclass(frozen=True)
class AttackCell:
    attack: AttackPoint
    source: Variant
    target: Variant
    threat: str  # "white-box" | "transfer"
    craft: CraftCell
    key: str


@dataclass
class Plan:
    data_key: str
    attack_ids: list[str]
    models: dict[str, ModelCell] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)
    crafts: dict[str, CraftCell] = field(default_factory=dict)
    attacks: list[AttackCell] = field(default_factory=list)
    dip_key: str | None = None

    def clean_key(self, v: Variant) -> str:
        return digest(["clean", PLAN_VERSION, v.key, self.data_key])

    def gradnorm_key(self, m: ModelCell, n: int) -> str:
        return digest(["gradnorm", PLAN_VERSION, m.key, self.data_key, n])


def attacked_indices(test: ImageSet, n_max: int, seed: int) -> np.ndarray:
    """The test fakes that are attacked: a seeded choice of at most `n_max`, in index order."""
    fakes = np.flatnonzero(test.labels.numpy() == FAKE)
    rng = np.random.default_rng([seed, 7])
    chosen = fakes[rng.permutation(len(fakes))[:n_max]]
    return np.sort(chosen)


def build_plan(ls: LoadedSuite, train: ImageSet, test: ImageSet) -> Plan:
    s = ls.suite
    data_key = data_digest(train, test)
    idx = attacked_indices(test, s.evaluation.max_attack_images, s.seed)
    plan = Plan(data_key=data_key, attack_ids=[test.ids[i] for i in idx])

    def model_key(name: str) -> str:
        if name in plan.models:
            return plan.models[name].key
        rm = ls.models[name]
        cfg = rm.config.model_dump(exclude={"label", "defense"})
        if rm.config.checkpoint:
            cfg["checkpoint"] = file_digest(ls.base_dir / rm.config.checkpoint)
        if rm.config.init_from:
            cfg["init_from"] = model_key(rm.config.init_from)
        defense_src = _defense_source_digest(rm.training_defense[0], ls.base_dir) if rm.training_defense else None
        key = digest(["model", PLAN_VERSION, cfg, rm.training_defense, defense_src, data_key, s.seed, s.data.size])
        plan.models[name] = ModelCell(rm, key)
        return key

    for name in ls.models:
        model_key(name)
        plan.variants[name] = Variant(name, name, None, plan.models[name].key, ls.models[name].label)
    for dname, d in s.defenses.items():
        use = d.use
        src = _defense_source_digest(use, ls.base_dir)
        for m in d.applies_to:
            vname = f"{m}+{dname}"
            key = digest(["variant", plan.models[m].key, use, d.params, src])
            label = f"{ls.models[m].label} + {d.label or dname}"
            plan.variants[vname] = Variant(vname, m, dname, key, label)

    ev = s.evaluation
    storage = [ev.storage, ev.jpeg_quality if ev.storage == "jpeg" else None]
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
        pkey = [ap.attack, ap.backend, ap.params.model_dump()]
        for src, dst, threat in pairs:
            sv = plan.variants[src]
            ckey = digest(["craft", PLAN_VERSION, pkey, sv.key, data_key, plan.attack_ids, storage, s.seed])
            craft = plan.crafts.setdefault(ckey, CraftCell(ap, sv, ckey))
            tv = plan.variants[dst]
            akey = digest(["attack", PLAN_VERSION, ckey, tv.key])
            plan.attacks.append(AttackCell(ap, sv, tv, threat, craft, akey))
    if s.dip is not None:
        clf = s.dip.classifier
        crafts = sorted({c.craft.key for c in plan.attacks
                         if c.target.name == clf and c.attack.in_table and not c.target.defense})
        plan.dip_key = digest(["dip", PLAN_VERSION, s.dip.model_dump(), plan.models[clf].key, crafts, data_key,
                               s.seed])
    return plan


def _defense_source_digest(use: str, base_dir: Path) -> str | None:
    """A user's defense file is part of the key, so editing it invalidates its cells."""
    if ":" not in use:
        return None
    mod = use.split(":", 1)[0]
    path = Path(mod) if mod.endswith(".py") else None
    if path is not None:
        path = path if path.is_absolute() else base_dir / path
        return file_digest(path) if path.is_file() else None
    return mod
