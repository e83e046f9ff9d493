"""Attack hyperparameters: one pydantic model per attack; every parameter explicit, validated.

An attack object holds only its hyperparameters (as in Foolbox 3); which implementation runs it
(`backend`) is chosen by the caller.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from bench.attacks.registry import ATTACKS, register_attack
from bench.config.types import Boolean, Integer, Number

LINE_SEARCH_DOUBLINGS = 5  # CW-L2's line search tries the step length x 2^k, k in [-5, 5] (ART's max_halving/doubling)


# Declared on a parameter added after cells of its attack were first stored: a dump leaves it out at its default,
# so a point that does not use it keeps its cell keys and its printed parameters (`AttackParams`). A parameter
# added from now on needs none: the craft kind's version (`bench.cells.registry`) re-keys what it changes.
ADDED_AFTER_KEYS = {"added_after_keys": True}

EOT_FIELD = Field(1, ge=1, description="native only: gradients averaged over this many passes through the "
                                       "(randomized) defense, each drawing fresh randomness (EOT; bench.attacks.eot)",
                  json_schema_extra=ADDED_AFTER_KEYS)


class AttackParams(BaseModel):
    """Base: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # How the implementations of the attack differ where a cross-check compares them (printed with its report).
    implementations_note: ClassVar[str] = ""

    def passes_per_image(self) -> float:
        """Forward plus backward passes per image the attack may spend at most (an ensemble runs cheaper
        members first); unknown: infinity."""
        return math.inf

    def describe(self, title: str) -> str:
        """The attack at these parameters in words, for a table row (`title` is the attack's)."""
        return f"{title} " + ", ".join(f"{k}={v}" for k, v in self.model_dump().items())

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler) -> dict[str, Any]:
        """The dump without the parameters declared `ADDED_AFTER_KEYS` that are at their defaults."""
        data = handler(self)
        for name, f in type(self).model_fields.items():
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("added_after_keys") and \
                    name in data and data[name] == f.default:
                del data[name]
        return data


@register_attack(name="fgsm", title="FGSM", family="single-step", norm="linf", budget="eps", deterministic=True)
class FGSMParams(AttackParams):
    """FGSM, eq. (1): x + eps * sign(grad_x J), clipped to [0, 1]. Untargeted."""

    eps: Number = Field(0.02, ge=0.0, le=1.0, description="L-inf step size per pixel, in [0, 1] pixel units")
    eot: Integer = EOT_FIELD


    def passes_per_image(self) -> float:
        return 2.0 * self.eot


@register_attack(name="cw_l2", title="CW-L2", family="minimum-norm", norm="l2", budget=None, deterministic=False,
                 iterations="max_iterations", margin="confidence")
class CWL2Params(AttackParams):
    """Carlini-Wagner L2, eqs. (3)-(6). c is binary-searched per image within [c_min, c_max]."""

    confidence: Number = Field(0.0, ge=0.0, description="kappa: required logit margin")
    c_min: Number = Field(1e-2, gt=0.0, description="lower end of the c search range (initial c)")
    c_max: Number = Field(1e4, gt=0.0, description="upper end of the c search range")
    binary_search_steps: Integer = Field(5, ge=1)
    max_iterations: Integer = Field(100, ge=1)
    learning_rate: Number = Field(0.01, gt=0.0)
    abort_early: Boolean = True
    step_rule: Literal["adam", "line_search"] = Field(
        "adam", description="native only: Adam at `learning_rate` (the reference code, Foolbox), or gradient "
                            "descent with a per-image step length found by halving and doubling it up to 5 times "
                            "from `learning_rate` (as ART does), which reaches far-away margins (large kappa)",
        json_schema_extra=ADDED_AFTER_KEYS)

    eot: Integer = EOT_FIELD
    implementations_note: ClassVar[str] = (
        "The c search differs between implementations: native searches c per image within [c_min, c_max] (c_min "
        "first, then geometric bisection between the largest failing and the smallest succeeding c, c_max standing "
        "in until one succeeds; the last step tries c_max itself); ART starts at c_min and doubles / halves with "
        "no upper bound (and line-searches the step size instead of using Adam, with no early abort); Foolbox "
        "starts at c_min, multiplies by 10 until it succeeds, then bisects toward 0, so it can end below c_min. "
        "c_max only binds the native one."
    )

    def passes_per_image(self) -> float:
        per_iteration = 2.0 * self.eot if self.step_rule == "adam" else 2.0 + 2 * LINE_SEARCH_DOUBLINGS + 1
        return per_iteration * self.max_iterations * self.binary_search_steps

    def describe(self, title: str) -> str:
        return (f"{title} kappa {self.confidence:g}, c in [{self.c_min:g}, {self.c_max:g}], "
                f"{self.binary_search_steps} x {self.max_iterations} iterations, EOT {self.eot}")

    @model_validator(mode="after")
    def _range(self) -> CWL2Params:
        if self.c_max < self.c_min:
            raise ValueError(f"c_max ({self.c_max}) must be >= c_min ({self.c_min})")
        if self.eot > 1 and self.step_rule != "adam":
            raise ValueError("eot > 1 needs step_rule: adam (the line search compares single-sample objectives)")
        return self


@register_attack(name="pgd", title="PGD", family="iterative", norm="linf", budget="eps", deterministic=True,
                 iterations="steps")
class PGDParams(AttackParams):
    """Projected gradient descent on the cross-entropy loss, L-inf or L2 ball."""

    eps: Number = Field(0.02, ge=0.0, description="radius of the ball, in [0, 1] pixel units (L2: over the image)")
    norm: Literal["linf", "l2"] = "linf"
    steps: Integer = Field(10, ge=1)
    step_size: Number = Field(0.005, gt=0.0, description="absolute step size (not relative to eps)")
    random_start: Boolean = False
    eot: Integer = EOT_FIELD


    def passes_per_image(self) -> float:
        return 2.0 * self.steps * self.eot

    def describe(self, title: str) -> str:
        return (f"{title} {'L-inf' if self.norm == 'linf' else 'L2'} eps {self.eps:g}, {self.steps} steps of "
                f"{self.step_size:g}, EOT {self.eot}")


@register_attack(name="apgd", title="APGD-CE", family="iterative", norm="linf", budget="eps", deterministic=False,
                 iterations="steps")
class APGDParams(AttackParams):
    """Auto-PGD on the cross-entropy loss (Croce and Hein 2020), L-inf or L2 ball.

    The step size starts at `step_size` x eps and is halved at the checkpoints of the paper's schedule when
    the loss stalls, with momentum 0.75; the native backend returns each image's highest-loss iterate
    (`bench.attacks.apgd`). AutoAttack's DLR loss needs a third-largest logit, so it is undefined for a
    two-class detector: this is APGD-CE. Not deterministic: the toolkit always starts from a random point
    in the ball, and implementations return different iterates (ART the last adversarial one).
    """

    eps: Number = Field(0.02, gt=0.0)
    norm: Literal["linf", "l2"] = "linf"
    steps: Integer = Field(100, ge=1, description="iterations per restart")
    restarts: Integer = Field(1, ge=1, description="random starts; native: each on every image, each image keeps "
                                                   "the highest-loss one")
    step_size: Number = Field(2.0, gt=0.0, description="initial step size, as a multiple of eps (the paper: 2)")
    random_start: Boolean = True
    eot: Integer = EOT_FIELD


    def passes_per_image(self) -> float:
        return 2.0 * self.steps * self.restarts * self.eot


@register_attack(name="square", title="Square", family="iterative", norm="linf", budget="eps", deterministic=False,
                 iterations="queries")
class SquareParams(AttackParams):
    """Square attack (Andriushchenko et al. 2020), L-inf: score-based black box, no gradients.

    Random square updates of +-eps per channel on the margin loss, kept when the margin falls; the
    square's share of the image starts at `p_init` and shrinks on the paper's schedule. The native backend
    spends the whole budget on every image and returns the lowest-margin point (`bench.attacks.square`).
    Its cost is its queries: forward passes per image (counted), 1 + `queries` per restart.
    """

    eps: Number = Field(0.02, gt=0.0, le=1.0)
    queries: Integer = Field(1000, ge=1, description="iterations (one query each) per restart")
    p_init: Number = Field(0.8, gt=0.0, le=1.0, description="initial share of pixels a square covers")
    restarts: Integer = Field(1, ge=1)

    def passes_per_image(self) -> float:
        return float((self.queries + 1) * self.restarts)


@register_attack(name="fmn", title="FMN-L2", family="minimum-norm", norm="l2", budget=None, deterministic=False,
                 iterations="steps")
class FMNParams(AttackParams):
    """Fast Minimum-Norm L2 (Pintor et al. 2021): steps on the margin inside an L2 ball whose radius
    shrinks while adversarial and grows (or jumps to the linearised boundary) while not; step sizes
    cosine-annealed from `max_stepsize` to `min_stepsize`, the radius factor from `gamma` to 0.001."""

    steps: Integer = Field(100, ge=1)
    max_stepsize: Number = Field(1.0, gt=0.0)
    min_stepsize: Number = Field(0.01, gt=0.0)
    gamma: Number = Field(0.05, gt=0.0, lt=1.0)

    def passes_per_image(self) -> float:
        return 2.0 * self.steps


@register_attack(name="ddn", title="DDN-L2", family="minimum-norm", norm="l2", budget=None, deterministic=False,
                 iterations="steps")
class DDNParams(AttackParams):
    """Decoupled Direction and Norm L2 (Rony et al. 2019): a unit step along the normalised cross-entropy
    gradient (size cosine-annealed from 1 to 0.01), then the perturbation rescaled to a norm that
    shrinks by (1 - gamma) while adversarial and grows by (1 + gamma) while not."""

    steps: Integer = Field(100, ge=1)
    init_epsilon: Number = Field(1.0, gt=0.0, description="initial norm")
    gamma: Number = Field(0.05, gt=0.0, lt=1.0)

    def passes_per_image(self) -> float:
        return 2.0 * self.steps


class EnsembleMember(BaseModel):
    """One attack of an ensemble: a registered attack, its backend and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attack: str
    backend: str = "native"
    params: dict[str, Any] = Field(default_factory=dict)


FAMILY_STRENGTH = {"single-step": 0, "iterative": 1, "minimum-norm": 2}


@register_attack(name="ensemble", title="Ensemble", family="iterative", norm="linf", budget="eps",
                 deterministic=False)
class EnsembleParams(AttackParams):
    """A robust-accuracy ensemble in the style of AutoAttack: per image the worst case over the members, run
    cheapest first (by `passes_per_image`), each only on the images no earlier member broke.

    All members share the ensemble's threat model: a member with a budget gets `eps` (it may not name a
    larger one) and must attack in `norm`; a minimum-norm member's result counts only where its
    perturbation is within eps. The family is the strongest member's (a minimum-norm member acts as an
    iterative attack within the budget).
    """

    eps: Number = Field(0.02, gt=0.0)
    norm: Literal["linf", "l2"] = "linf"
    members: dict[str, EnsembleMember] = Field(min_length=1)

    @model_validator(mode="after")
    def _members(self) -> EnsembleParams:
        self.ordered()
        return self

    def ordered(self) -> list[tuple[str, str, str, AttackParams]]:
        """(key, attack, backend, validated parameters) per member, cheapest first (stable)."""
        out = []
        for key, m in self.members.items():
            spec = ATTACKS.find(m.attack)
            if spec is None or issubclass(spec.params, EnsembleParams):  # no ensemble inside an ensemble
                raise ValueError(f"member {key}: unknown attack {m.attack!r}")
            if m.backend not in spec.backends:
                raise ValueError(f"member {key}: attack {m.attack!r} has no backend {m.backend!r}; "
                                 f"available: {', '.join(sorted(spec.backends))}")
            raw = dict(m.params)
            if spec.budget is not None:
                raw.setdefault(spec.budget, self.eps)
                if float(raw[spec.budget]) > self.eps + 1e-12:
                    raise ValueError(f"member {key}: {spec.budget}={raw[spec.budget]} exceeds the ensemble's "
                                     f"eps={self.eps}")
            if "norm" in spec.params.model_fields:
                raw.setdefault("norm", self.norm)
            try:
                params = spec.params.model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"member {key}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
            if spec.norm_of(params) != self.norm:
                raise ValueError(f"member {key}: attacks in {spec.norm_of(params)}, the ensemble in {self.norm}")
            out.append((key, m.attack, m.backend, params))
        return sorted(out, key=lambda t: t[3].passes_per_image())

    def passes_per_image(self) -> float:
        return sum(p.passes_per_image() for *_, p in self.ordered())

    def family_at(self) -> str:
        strongest = max(FAMILY_STRENGTH[ATTACKS.get(a, "attack").family] for _, a, _, _ in self.ordered())
        return "single-step" if strongest == 0 else "iterative"
