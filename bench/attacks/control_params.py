"""The controls' declarations and parameters (storage only, random noise); their backends are in
`bench.attacks.controls`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bench.attacks.params import AttackParams
from bench.attacks.registry import RANDOM_NOISE, STORAGE_ONLY, register_attack
from bench.config.types import Integer, Number


@register_attack(name="storage", title="Storage only", family="control", norm="linf", budget=None,
                 deterministic=True, control=STORAGE_ONLY)
class StorageParams(AttackParams):
    """The clean images, unchanged: what storage alone does to them."""

    def passes_per_image(self) -> float:
        return 0.0


@register_attack(name="noise", title="Noise", family="control", norm="linf", budget="eps", deterministic=True,
                 control=RANDOM_NOISE)
class NoiseParams(AttackParams):
    """Uniform random sign noise: x + eps * s, s in {-1, +1} per pixel and channel, clipped to [0, 1]."""

    size_param: ClassVar[str] = "eps"  # the parameter a plan sets to an attack's budget

    eps: Number = Field(0.02, ge=0.0, le=1.0, description="L-inf size of the noise, in [0, 1] pixel units")
    seed: Integer = Field(0, ge=0, description="with each image's content, seeds its noise")

    def passes_per_image(self) -> float:
        return 0.0


@register_attack(name="noise_l2", title="Noise L2", family="control", norm="l2", budget=None, deterministic=True,
                 control=RANDOM_NOISE)
class NoiseL2Params(AttackParams):
    """Gaussian noise scaled to L2 norm `l2` per image (before clipping to [0, 1])."""

    size_param: ClassVar[str] = "l2"  # given, or filled in from the median L2 of the attack named by `of`

    of: str = Field("", description="the craft key of the attack whose median L2 (before storage) over the images "
                                    "it perturbed sets `l2`; empty: `l2` is given (an L2 attack's budget)")
    of_label: str = Field("", description="that attack's label, for the report")
    l2: Number | None = Field(None, ge=0.0, description="the noise's L2 norm; with `of`, filled in by the craft cell")
    seed: Integer = Field(0, ge=0)

    def passes_per_image(self) -> float:
        return 0.0
