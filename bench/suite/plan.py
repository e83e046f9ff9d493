"""A suite expanded into cells, each named by a hash of everything that determines its result.

The plan is plain data: `Plan.as_dict()` is stored with every run, so the leaderboard and exports are
rendered from the store alone (no data, checkpoints or user code needed). Each cell kind lives in
`bench.cells`; this module only decides which cells exist, their keys and their dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import FAKE
from bench.attacks.storage_spec import storage_key
from bench.cells.keys import cell_key
from bench.digests import data_digest, digest, file_digest
from bench.plugins import plugin_path
from bench.suite.load import AttackPoint, LoadedSuite, ResolvedModel, runs_against

if TYPE_CHECKING:  # a data split holds tensors; the plan is read without torch
    from bench.data.dataset import ImageSet


@dataclass(frozen=True)
class ModelCell:
    """Train (or load) one detector of the suite."""

    model: ResolvedModel
    key: str
    deps: tuple[str, ...] = ()
    kind: str = "model"

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.name, "arch": self.model.config.arch,
                "defense": self.model.training_defense[0] if self.model.training_defense else None,
                "params": self.model.training_defense[1] if self.model.training_defense else None}


@dataclass(frozen=True)
class Variant:
    """A model as evaluated: plain, or with an evaluation-time defense."""

    name: str
    model: str
    defense: str | None
    key: str
    label: str


@dataclass(frozen=True)
class CleanCell:
    """Score every test image on one variant."""

    variant: Variant
    key: str
    deps: tuple[str, ...]
    kind: str = "clean"

    def describe(self) -> dict[str, Any]:
        return {"variant": self.variant.name, "model": self.variant.model, "defense": self.variant.defense}


@dataclass(frozen=True)
class GradNormCell:
    """Input-gradient norms of one variant (a model, or a model behind its defense) on the first `n` test images."""

    model: str  # the variant's name (a plain variant is named as its model)
    n: int
    key: str
    deps: tuple[str, ...]
    kind: str = "gradnorm"

    def describe(self) -> dict[str, Any]:
        return {"model": self.model}


@dataclass(frozen=True)
class CraftCell:
    """Adversarial examples for the attacked fakes, made on `source`, stored under the home."""

    attack: AttackPoint
    source: Variant
    key: str
    deps: tuple[str, ...] = ()
    kind: str = "craft"

    def describe(self) -> dict[str, Any]:
        return {"attack": self.attack.attack, "attack_key": self.attack.key, "label": self.attack.label,
                "backend": self.attack.backend, "params": self.attack.params, "source": self.source.name,
                "model": self.source.model, "defense": self.source.defense, "storage_aware": self.attack.storage_aware}


@dataclass(frozen=True)
class AttackCell:
    """Score one craft's adversarial examples on `target`."""

    attack: AttackPoint
    source: Variant
    target: Variant
    threat: str  # "white-box" | "transfer"
    craft: CraftCell
    key: str
    deps: tuple[str, ...] = ()
    kind: str = "attack"

    @property
    def adaptive(self) -> bool:
        """Made through the scored defense itself (not on its undefended base)."""
        return self.source.name == self.target.name and self.target.defense is not None

    def describe(self) -> dict[str, Any]:
        return {"attack": self.attack.attack, "attack_key": self.attack.key, "label": self.attack.label,
                "backend": self.attack.backend, "params": self.attack.params, "threat": self.threat,
                "source": self.source.name, "target": self.target.name, "model": self.target.model,
                "defense": self.target.defense, "adaptive": self.adaptive, "storage_aware": self.attack.storage_aware}


@dataclass(frozen=True)
class SectionCell:
    """A cell of an optional suite section (the DIP protocol, a cross-check): its payload is plain data."""

    kind: str
    key: str
    deps: tuple[str, ...]
    payload: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {k: self.payload[k] for k in ("model", "attack") if k in self.payload}


@dataclass
class Plan:
    data_key: str
    attack_ids: list[str]
    models: dict[str, ModelCell] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)
    cleans: dict[str, CleanCell] = field(default_factory=dict)
    gradnorms: dict[str, GradNormCell] = field(default_factory=dict)
    crafts: dict[str, CraftCell] = field(default_factory=dict)
    attacks: list[AttackCell] = field(default_factory=list)
    sections: list[SectionCell] = field(default_factory=list)

    def clean_key(self, v: Variant) -> str:
        return cell_key("clean", v.key, self.data_key)

    def gradnorm_key(self, m: ModelCell, n: int) -> str:
        return cell_key("gradnorm", m.key, self.data_key, n)

    def variant_deps(self, v: Variant) -> tuple[str, ...]:
        return (self.models[v.model].key,)

    def cells(self) -> list:
        """Every cell, dependencies before dependents."""
        return [*self.models.values(), *self.cleans.values(), *self.gradnorms.values(), *self.crafts.values(),
                *self.attacks, *self.sections]

    def section(self, kind: str) -> list[SectionCell]:
        return [c for c in self.sections if c.kind == kind]

    # ------------------------------------------------------------------ as data
    def as_dict(self) -> dict[str, Any]:
        points: list[AttackPoint] = []
        for c in self.attacks:
            if c.attack not in points:
                points.append(c.attack)
        return {
            "data_key": self.data_key, "attack_ids": list(self.attack_ids),
            "models": [{"key": m.key, "deps": list(m.deps), "resolved": m.model.as_dict()}
                       for m in self.models.values()],
            "variants": [v.__dict__ for v in self.variants.values()],
            "gradnorm_images": next(iter(self.gradnorms.values())).n if self.gradnorms else None,
            "defended_gradnorm_images": next((g.n for g in self.gradnorms.values() if g.model not in self.models),
                                             None),
            "points": [p.as_dict() for p in points],
            "crafts": [{"key": c.key, "point": points.index(c.attack), "source": c.source.name,
                        "deps": list(c.deps)} for c in self.crafts.values()],
            "attacks": [{"key": c.key, "point": points.index(c.attack), "source": c.source.name,
                         "target": c.target.name, "threat": c.threat, "craft": c.craft.key} for c in self.attacks],
            "sections": [{"kind": s.kind, "key": s.key, "deps": list(s.deps), "payload": s.payload}
                         for s in self.sections],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        plan = cls(d["data_key"], list(d["attack_ids"]))
        for m in d["models"]:
            rm = ResolvedModel.from_dict(m["resolved"])
            plan.models[rm.name] = ModelCell(rm, m["key"], tuple(m["deps"]))
        for v in d["variants"]:
            plan.variants[v["name"]] = Variant(**v)
        _add_scoring_cells(plan, d.get("gradnorm_images"), d.get("defended_gradnorm_images"))
        points = [AttackPoint.from_dict(p) for p in d["points"]]
        for c in d["crafts"]:
            src = plan.variants[c["source"]]
            deps = tuple(c["deps"]) if "deps" in c else plan.variant_deps(src)
            plan.crafts[c["key"]] = CraftCell(points[c["point"]], src, c["key"], deps)
        for a in d["attacks"]:
            craft = plan.crafts[a["craft"]]
            tv = plan.variants[a["target"]]
            plan.attacks.append(AttackCell(points[a["point"]], plan.variants[a["source"]], tv, a["threat"], craft,
                                           a["key"], (craft.key, *plan.variant_deps(tv))))
        plan.sections = [SectionCell(s["kind"], s["key"], tuple(s["deps"]), s["payload"]) for s in d["sections"]]
        return plan


def attacked_indices(test: ImageSet, n_max: int, seed: int) -> np.ndarray:
    """The test fakes that are attacked: a seeded choice of at most `n_max`, in index order."""
    fakes = np.flatnonzero(test.labels.numpy() == FAKE)
    rng = np.random.default_rng([seed, 7])
    chosen = fakes[rng.permutation(len(fakes))[:n_max]]
    return np.sort(chosen)


def _add_scoring_cells(plan: Plan, gradnorm_images: int | None, defended_images: int | None = None) -> None:
    """Clean cells per variant; gradient norms per model on `gradnorm_images` and, through each evaluation-time
    defense, on `defended_images` (a defense's forward may be costly: at most the checks' `n`)."""
    for v in plan.variants.values():
        plan.cleans[v.name] = CleanCell(v, plan.clean_key(v), plan.variant_deps(v))
    if gradnorm_images:
        for name, mc in plan.models.items():
            plan.gradnorms[name] = GradNormCell(name, gradnorm_images, plan.gradnorm_key(mc, gradnorm_images),
                                                (mc.key,))
    if gradnorm_images and defended_images:
        for v in plan.variants.values():  # through each evaluation-time defense's forward too
            if v.defense is not None:
                key = cell_key("gradnorm", v.key, plan.data_key, defended_images)
                plan.gradnorms[v.name] = GradNormCell(v.name, defended_images, key, plan.variant_deps(v))


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
        defense_src = _defense_source_digest(rm.training_defense[0], ls.base_dir) if rm.training_defense else None
        seed = s.seed + rm.replica  # the training seed: replicas differ (bench.suite.replicas)
        key = cell_key("model", cfg, rm.training_defense, defense_src, data_key, seed, s.data.size)
        plan.models[name] = ModelCell(rm, key, deps)
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
    _add_scoring_cells(plan, ev.gradient_norm_images, min(ev.gradient_norm_images, ev.checks.n))

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
    from bench.suite.controls import add_controls_and_checks  # lazy: it imports this module (its cells)

    add_controls_and_checks(plan, ls)
    return plan


def add_attack_cell(plan: Plan, ls: LoadedSuite, ap: AttackPoint, src: str, dst: str, threat: str,
                    extra_deps: tuple[str, ...] = ()) -> AttackCell:
    """The craft cell of `ap` on variant `src` (shared when it exists) and its attack cell scored on `dst`."""
    s = ls.suite
    storage = storage_key(s.evaluation)
    pkey: list[Any] = [ap.attack, ap.backend, ap.params, "storage-aware" if ap.storage_aware else "storage-unaware"]
    if ap.source_digest is not None:
        pkey.append(ap.source_digest)
    if ap.role != "attack":  # a control or check never shares a key with a suite attack of the same parameters
        pkey += [ap.role, ap.key, ap.images, ap.restarts]
        if ap.reference is not None:
            pkey.append(ap.reference)
    sv = plan.variants[src]
    ckey = cell_key("craft", pkey, sv.key, plan.data_key, plan.attack_ids, storage, s.seed)
    craft = plan.crafts.setdefault(ckey, CraftCell(ap, sv, ckey, (*plan.variant_deps(sv), *extra_deps)))
    tv = plan.variants[dst]
    akey = cell_key("attack", ckey, tv.key)
    cell = AttackCell(ap, sv, tv, threat, craft, akey, (ckey, *plan.variant_deps(tv)))
    plan.attacks.append(cell)
    return cell


def plan_for_data(ls: LoadedSuite, train: ImageSet, test: ImageSet) -> Plan:
    """The suite's plan for a loaded train/test split (its digest and the seeded choice of attacked fakes)."""
    s = ls.suite
    idx = attacked_indices(test, s.evaluation.max_attack_images, s.seed)
    return build_plan(ls, data_digest(train, test), [test.ids[i] for i in idx])


def _defense_source_digest(use: str, base_dir: Path) -> str | None:
    """A user's defense file is part of the key, so editing it invalidates its cells."""
    if ":" not in use:
        return None
    path = plugin_path(use, base_dir)
    if path is not None:
        return file_digest(path) if path.is_file() else None
    return use.split(":", 1)[0]
