"""A suite expanded into cells, each named by a hash of everything that determines its result.

The plan is plain data: `Plan.as_dict()` is stored with every run, so the leaderboard and exports are
rendered from the store alone (no data, checkpoints or user code needed). Each cell kind lives in
`bench.cells`; this module holds the cells' types and the plan; `bench.suite.planner` decides which cells a
suite has (`build_plan`), `bench.suite.controls` adds its controls and check attacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.attacks.storage_spec import storage_key
from bench.cells.keys import cell_key
from bench.suite.loaded import AttackPoint, LoadedSuite, ResolvedModel


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
        add_scoring_cells(plan, d.get("gradnorm_images"), d.get("defended_gradnorm_images"))
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


def add_scoring_cells(plan: Plan, gradnorm_images: int | None, defended_images: int | None = None) -> None:
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
