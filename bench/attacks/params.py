"""Attack hyperparameters: one pydantic model per attack; every parameter explicit, validated.

An attack object holds only its hyperparameters (as in Foolbox 3); which implementation runs it
(`backend`) is chosen by the caller.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.attacks.registry import register_attack
from bench.suite.types import Boolean, Integer, Number


class AttackParams(BaseModel):
    """Base: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@register_attack(name="fgsm", title="FGSM", family="single-step", norm="linf", budget="eps", deterministic=True)
class FGSMParams(AttackParams):
    """FGSM, eq. (1): x + eps * sign(grad_x J), clipped to [0, 1]. Untargeted."""

    eps: Number = Field(0.02, ge=0.0, le=1.0, description="L-inf step size per pixel, in [0, 1] pixel units")


@register_attack(name="cw_l2", title="CW-L2", family="minimum-norm", norm="l2", budget=None, deterministic=False)
class CWL2Params(AttackParams):
    """Carlini-Wagner L2, eqs. (3)-(6). c is binary-searched per image within [c_min, c_max]."""

    confidence: Number = Field(0.0, ge=0.0, description="kappa: required logit margin")
    c_min: Number = Field(1e-2, gt=0.0, description="lower end of the c search range (initial c)")
    c_max: Number = Field(1e4, gt=0.0, description="upper end of the c search range")
    binary_search_steps: Integer = Field(5, ge=1)
    max_iterations: Integer = Field(100, ge=1)
    learning_rate: Number = Field(0.01, gt=0.0)
    abort_early: Boolean = True

    @model_validator(mode="after")
    def _range(self) -> CWL2Params:
        if self.c_max < self.c_min:
            raise ValueError(f"c_max ({self.c_max}) must be >= c_min ({self.c_min})")
        return self


@register_attack(name="pgd", title="PGD", family="iterative", norm="linf", budget="eps", deterministic=True)
class PGDParams(AttackParams):
    """Projected gradient descent on the cross-entropy loss, L-inf or L2 ball."""

    eps: Number = Field(0.02, ge=0.0, description="radius of the ball, in [0, 1] pixel units (L2: over the image)")
    norm: Literal["linf", "l2"] = "linf"
    steps: Integer = Field(10, ge=1)
    step_size: Number = Field(0.005, gt=0.0, description="absolute step size (not relative to eps)")
    random_start: Boolean = False
