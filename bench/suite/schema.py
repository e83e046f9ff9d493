"""The suite file format, validated with pydantic. See README "Suite format".

A suite declares data, models (each optionally trained with a training-time defense, possibly a
grid), evaluation-time defenses, attacks with their grids, threat models, profiles and outputs. The
components own their models (`bench.data.config.DataConfig`, `bench.models.recipe.Recipe`); the optional
sections (`bench.sections`) declare their own fields (`dip`, `crosscheck`, `certify`, a plug-in's), which
`suite_model` adds to `Suite`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from bench.config.strict import Strict
from bench.config.types import MAX_COUNT, Boolean, Integer, Number
from bench.data.config import DataConfig
from bench.models.recipe import Recipe
from bench.models.registry import default_recipe

if TYPE_CHECKING:
    from bench.sections.registry import Section

MAX_SEED = 2**32 - 1  # numpy's seeds are unsigned 32-bit; SQLite's integers are signed 64-bit
MAX_DESCRIPTION = 4000  # characters: the description is printed in the leaderboard's header
MAX_LABEL = 200
MAX_SEEDS = 32  # training replicas per model


class ModelConfig(Strict):
    """A detector: built-in architecture trained by the recipe, or loaded from the user's checkpoint.

    `defense` names a training-time defense and its parameters; any list-valued parameter is a grid
    and expands into one model per value (named `<model>-<defense>-<param><value>`).
    """

    arch: str
    label: str | None = Field(None, max_length=MAX_LABEL)
    checkpoint: str | None = None
    pretrained: Boolean = False
    mean: tuple[Number, Number, Number] = (0.0, 0.0, 0.0)
    std: tuple[Number, Number, Number] = (1.0, 1.0, 1.0)
    recipe: Recipe = Recipe()
    init_from: str | None = Field(None, description="start training from another model of the suite")
    defense: dict[str, dict[str, Any]] | None = None
    baseline: str | None = Field(
        None, description="the undefended model this one is compared with in the defense ranking (a model of the "
                          "suite; default: init_from, else the one model of the same arch without a defense)")
    seeds: Integer | None = Field(None, ge=1, le=MAX_SEEDS, description="this model's training replicas (default: "
                                  "the suite's `seeds`): an expensive model may have fewer")
    attacks: list[str] | None = Field(None, description="the suite's attack entries run against this model and its "
                                      "defended variants (crafted on or scored by them); default: every one")

    @model_validator(mode="before")
    @classmethod
    def _arch_recipe(cls, data: Any) -> Any:
        """Recipe fields the suite leaves out come from the architecture's own defaults (e.g. the DCT detector's),
        then from the paper's."""
        if not isinstance(data, dict) or not isinstance(data.get("arch"), str):
            return data
        defaults = default_recipe(data["arch"])
        if defaults and (data.get("recipe") is None or isinstance(data.get("recipe"), dict)):
            data = {**data, "recipe": {**defaults, **(data.get("recipe") or {})}}
        return data

    @field_validator("std")
    @classmethod
    def _std(cls, v: tuple[Number, Number, Number]) -> tuple[Number, Number, Number]:
        if any(s <= 0 for s in v):
            raise ValueError("must be > 0 in every channel")
        return v

    @field_validator("defense")
    @classmethod
    def _one_defense(cls, v: dict | None) -> dict | None:
        if v is not None and len(v) != 1:
            raise ValueError("name exactly one training defense, e.g. {lipschitz: {lambda: 50}}")
        return v


class DefenseConfig(Strict):
    """An evaluation-time defense (preprocessor or wrapper) applied to the listed models."""

    use: str = Field(description="a built-in defense name, or 'module:Class' / 'file.py:Class'")
    params: dict[str, Any] = Field(default_factory=dict)
    applies_to: list[str] = Field(min_length=1)
    label: str | None = Field(None, max_length=MAX_LABEL)
    adaptive: Boolean = Field(
        False, description="also attack through the defense (BPDA) instead of only crafting on the bare model"
    )


class AttackConfig(BaseModel):
    """An attack entry: `attack` (registry name), `backend`, and its parameters.

    A list-valued parameter is a grid axis: the entry expands into the cartesian product.
    """

    model_config = ConfigDict(extra="allow")

    attack: str
    backend: str = Field("art", description="a registered backend (art, foolbox, native) or 'file.py:Name' / "
                         "'module:Name' (docs/adding-an-attack.md)")
    table: dict[str, Any] | None = Field(
        None, description="which grid point the paper's Table II shows (default: the first)"
    )
    storage_aware: Boolean | None = Field(
        None, description="made through the suite's storage (default: evaluation.storage_aware); false: on the bare "
                          "detector, as in the paper (its output is still stored and scored after storage)")
    models: list[str] | None = Field(
        None, description="run only against these models of the suite (and their defended variants); default: all"
    )

    def param_items(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ThreatModels(Strict):
    white_box: Boolean = True
    transfer: list[tuple[str, str]] = Field(
        default_factory=list, description="pairs [source, target]: made on source, scored on target"
    )


class CheckAttack(Strict):
    """An attack the checks add to the run: a registered attack, its backend and every parameter, explicitly."""

    attack: str
    backend: str = "native"
    params: dict[str, Any] = Field(default_factory=dict)


class ConvergenceCheck(CheckAttack):
    """An extra convergence pair: the attack as given against the same attack with `steps_factor` x its `steps`."""

    steps_factor: Integer = Field(2, ge=2, le=100)
    restarts: Integer = Field(1, ge=1, le=100, description="the stronger run's random restarts (1: none)")


class LongerRuns(Strict):
    """The not-converged check's reruns: each of the suite's iterative and minimum-norm attacks whose registration
    declares its iteration parameter, at its table point, with `steps_factor` x its iterations, on the first
    `checks.n` attacked fakes of every variant it is made on and scored on (white-box)."""

    steps_factor: Integer = Field(2, ge=2, le=100, description="the rerun's iterations, as a multiple of the suite's")
    replicas: Literal["all", "first"] = Field(
        "all", description="first: rerun only on each model's replica 0 (seed + 0), to save time")
    n: Integer | None = Field(None, ge=1, le=MAX_COUNT, description="attacked fakes per rerun (default: checks.n)")


class ChecksConfig(Strict):
    """The attacks the sanity checks add (docs/checks/): each runs on at most `n` attacked fakes."""

    n: Integer = Field(32, ge=1, le=MAX_COUNT, description="attacked fakes per check attack")
    unbounded: CheckAttack | None = Field(
        default_factory=lambda: CheckAttack(attack="pgd", params={"eps": 1.0, "norm": "linf", "steps": 20,
                                                                  "step_size": 0.1, "random_start": False}),
        description="an attack with no meaningful budget: it should fool every model (unbounded-attack-fails)")
    longer_runs: LongerRuns | None = Field(
        default_factory=LongerRuns,
        description="rerun the suite's own iterative and minimum-norm attacks with more iterations (not-converged)")
    convergence: ConvergenceCheck | None = Field(
        None, description="optional: an attack the suite does not run, as given and with more steps (not-converged)")


class EvaluationConfig(Strict):
    """How adversarial examples are made and scored."""

    max_attack_images: Integer = Field(200, ge=1, le=MAX_COUNT, description="at most this many test fakes are attacked")
    attack_batch_size: Integer = Field(64, ge=1, le=MAX_COUNT)
    storage: Literal["png", "jpeg"] = Field("png", description="8-bit quantisation, or a JPEG round trip")
    jpeg_quality: Integer = Field(95, ge=1, le=100)
    storage_aware: Boolean = Field(
        True, description="attacks are made through the storage (the scored image); an attack entry's "
                          "`storage_aware: false` makes it on the bare detector (the paper's setting)")
    gradient_norm_images: Integer = Field(128, ge=1, le=MAX_COUNT)
    controls: Boolean = Field(True, description="add the storage-only and random-noise controls (never ranked)")
    checks: ChecksConfig = ChecksConfig()


class HeadlineBudget(Strict):
    """The budget of the ranking's robust-accuracy axis: bounded attacks of this norm at this budget."""

    norm: Literal["linf", "l2"] = "linf"
    eps: Number = Field(gt=0.0)


class ReportConfig(Strict):
    leaderboard_dir: str = "leaderboard"
    headline: HeadlineBudget | None = Field(
        None, description="the robust-accuracy axis's budget (default: the most common table eps of the suite's "
                          "bounded L-inf attacks)")
    figures: Boolean = True
    l2_budgets: list[Number] = Field(
        default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0], min_length=1,
        description="L2 budgets at which minimum-norm attacks' security-evaluation curves are tabulated; a success "
                    "with a larger perturbation than the largest is not counted, and is flagged")


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    seed: Integer = Field(0, ge=0, le=MAX_SEED, description="numpy and torch seeds: 0 <= seed < 2**32")
    seeds: Integer = Field(1, ge=1, le=MAX_SEEDS, description="train every model this many times, replica r with "
                           "seed + r; tables report the mean over replicas (docs/intervals.md)")
    data: DataConfig = DataConfig()
    models: dict[str, ModelConfig] = Field(min_length=1)
    defenses: dict[str, DefenseConfig] = Field(default_factory=dict)
    attacks: dict[str, AttackConfig] = Field(default_factory=dict)
    threat_models: ThreatModels = ThreatModels()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sections: list[str] = Field(default_factory=list, description="plug-in sections: 'file.py:NAME' or "
                                "'module:NAME', each a bench.sections.Section with its own field")


class _OpenSuite(Suite):
    """A suite whose plug-in sections were not loaded: their fields are kept, unchecked."""

    model_config = ConfigDict(extra="allow")


_MODELS: dict[tuple, tuple[tuple, type[Suite]]] = {}  # the sections are kept: their ids stay theirs


def suite_model(sections: Sequence[Section], *, open_fields: bool = False) -> type[Suite]:
    """`Suite` with each section's own field (`Section.field`, typed `Section.schema`, default
    `Section.default`). With `open_fields`, any other top-level field is accepted unchecked (a suite whose
    plug-in sections are checked by name only)."""
    key = (tuple(id(s) for s in sections), open_fields)
    if key not in _MODELS:
        fields = {s.field: (s.schema, s.default) for s in sections if s.field is not None}
        _MODELS[key] = (tuple(sections), create_model("Suite", __base__=_OpenSuite if open_fields else Suite, **fields))
    return _MODELS[key][1]
