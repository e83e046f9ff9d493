"""`DIPConfig`: every parameter of Deep Image Prior purification, validated.

The defaults are the paper's (Ulyanov et al.'s denoising network); `levels_for` says how many levels
of the generator fit an image, `candidates` lists the readouts `readout: auto` chooses among.
`DIPAdaptiveConfig`: the adaptive attacks through DIP of the suite's `dip.adaptive` (`bench.dip.adaptive`).
`DIPProtocol`: the suite's `dip:` section, which holds both (registered in `bench.dip.section`).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from bench.config.strict import Strict
from bench.config.types import MAX_COUNT, Integer, Number
from bench.errors import validation_error

# The two unperturbed categories of Tables III and IV (the protocol samples them, the report reads them).
UNPERTURBED_FAKE = "unperturbed fake-correct"
UNPERTURBED_REAL = "unperturbed real-correct"


class DIPConfig(BaseModel):
    """Every parameter of DIP purification; the defaults are the paper's (Ulyanov et al.'s denoising net)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels_down: tuple[int, ...] = Field((8, 16, 32, 64, 128), description="channels of each level's down path")
    channels_up: tuple[int, ...] = Field((8, 16, 32, 64, 128), description="channels of each level's up path")
    channels_skip: tuple[int, ...] = Field((0, 0, 0, 4, 4), description="skip-branch channels (0: no skip)")
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    pad: Literal["reflection", "zero"] = "reflection"
    leaky_slope: float = Field(0.2, ge=0.0, description="LeakyReLU negative slope")
    input_channels: int = Field(32, ge=1, description="channels of the input noise z")
    input_scale: float = Field(0.1, gt=0.0, description="z ~ U[0, 1) * input_scale")
    input_jitter: float = Field(1.0 / 30.0, ge=0.0, description="std of the Gaussian added to z at each step")
    lr: float = Field(0.01, gt=0.0, description="Adam learning rate (network weights only)")
    ema: float = Field(0.99, ge=0.0, lt=1.0, description="weight of the exponential moving average of outputs")
    iterations: int = Field(10_000, ge=1, description="optimisation steps (trajectories run them all)")
    readout: int | Literal["auto"] = Field(6_000, description="iteration whose averaged output is the result")
    readout_range: tuple[int, int, int] = Field(
        (2_500, 7_500, 500), description="candidates for readout=auto: (first, last, step), inclusive"
    )
    batch_size: int = Field(16, ge=1, description="images fitted at once (each with its own network)")
    bmm_max_pixels: int = Field(
        64, ge=0, description="3x3 convolutions whose output has at most this many pixels run as bmm"
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="CPU: batches fitted in parallel threads, each with one intra-op thread "
        "(default: torch's thread count)",
    )

    @field_validator("readout")
    @classmethod
    def _readout(cls, v: int | str) -> int | str:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError(f"readout must be a positive iteration or 'auto', got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DIPConfig:
        n = len(self.channels_down)
        if n == 0 or len(self.channels_up) != n or len(self.channels_skip) != n:
            raise ValueError(
                "channels_down, channels_up and channels_skip must have the same (non-zero) length, got "
                f"{len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)}"
            )
        if min(self.channels_down) < 1 or min(self.channels_up) < 1 or min(self.channels_skip) < 0:
            raise ValueError("channel counts must be positive (skip channels may be 0)")
        if isinstance(self.readout, int) and self.readout > self.iterations:
            raise ValueError(f"readout ({self.readout}) is after the last iteration ({self.iterations})")
        first, last, step = self.readout_range
        if first < 1 or last < first or step < 1:
            raise ValueError(f"readout_range must be (first >= 1, last >= first, step >= 1), got {self.readout_range}")
        if self.readout == "auto" and first > self.iterations:
            raise ValueError(f"readout_range starts ({first}) after the last iteration ({self.iterations})")
        return self

    @classmethod
    def from_dict(cls, params: dict | None, where: str = "dip") -> DIPConfig:
        """Validate user parameters; errors become a `BenchError` naming the field."""
        try:
            return cls(**dict(params or {}))
        except ValidationError as exc:
            raise validation_error(exc, where) from None

    def candidates(self) -> list[int]:
        """The readout candidates of `readout_range` that lie within `iterations`."""
        first, last, step = self.readout_range
        return [t for t in range(first, last + 1, step) if t <= self.iterations]

    def levels_for(self, height: int, width: int) -> int:
        """How many levels fit an image: each level's down path must leave at least 2 x 2 pixels."""
        levels, h, w = 0, height, width
        for _ in self.channels_down:
            h, w = (h + 1) // 2, (w + 1) // 2
            if h < 2 or w < 2:
                break
            levels += 1
        return levels

    def describe(self) -> dict:
        """All fields. `batch_size`, `bmm_max_pixels` and `workers` only choose how the engine runs (they
        change float32 results in the last bits, see `bench.dip.engine`'s notes), the others the method."""
        return self.model_dump(mode="json")


class AdaptivePGD(BaseModel):
    """PGD (L-inf) through DIP: one cell per budget; every parameter explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: list[Number] = Field(min_length=1, description="L-inf budgets (the suite's, in [0, 1] pixel units)")
    steps: Integer = Field(ge=1)
    step_size: Number = Field(gt=0.0, description="absolute step size")
    eot: Integer = Field(ge=1, description="DIP purifications (each with another seed) averaged per gradient")
    restarts: Integer = Field(ge=1, description="restarts from a random start on the images not yet fooled")

    @field_validator("eps")
    @classmethod
    def _eps(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < e <= 1.0 for e in v):
            raise ValueError(f"eps must lie in (0, 1], got {v}")
        return v


class AdaptiveCW(BaseModel):
    """CW-L2 (native, Adam) through DIP; every parameter explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: Number = Field(ge=0.0)
    c_min: Number = Field(gt=0.0)
    c_max: Number = Field(gt=0.0)
    binary_search_steps: Integer = Field(ge=1)
    max_iterations: Integer = Field(ge=1)
    learning_rate: Number = Field(gt=0.0)
    eot: Integer = Field(ge=1, description="DIP purifications (each with another seed) averaged per gradient")


class AdaptiveConvergence(BaseModel):
    """The convergence twin of every adaptive cell: the same attack with `steps_factor` x its steps (PGD's
    `steps`, CW-L2's `max_iterations`) on the first `images` of the same attacked fakes (default: all of them);
    the sanity check `not-converged` compares the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps_factor: Integer = Field(2, ge=2, le=100)
    images: Integer | None = Field(None, ge=1, description="the twin's images: the first this many of the cell's")


class DIPAdaptiveConfig(BaseModel):
    """Adaptive attacks through the full DIP purifier (BPDA + EOT over DIP's seeds), Table III's adaptive rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: Integer = Field(32, ge=1, description="attacked fakes the classifier detects (no calibration source)")
    readout: int | Literal["calibrated"] = Field(
        "calibrated", description="the iteration the attack's DIP reads out: the evaluation's calibrated one, or an "
                                  "earlier one (cheaper, a weaker attack; the final images are always scored at the "
                                  "calibrated readout)")
    pgd: AdaptivePGD | None = None
    cw_l2: AdaptiveCW | None = None
    convergence: AdaptiveConvergence | None = Field(
        default_factory=AdaptiveConvergence, description="each cell's twin with more steps (null: no twins)")

    @field_validator("readout")
    @classmethod
    def _readout(cls, v: int | str) -> int | str:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError(f"readout must be a positive iteration or 'calibrated', got {v!r}")
        return v

    @classmethod
    def from_dict(cls, params: dict | None, where: str = "dip.adaptive") -> DIPAdaptiveConfig:
        try:
            return cls(**dict(params or {}))
        except ValidationError as exc:
            raise validation_error(exc, where) from None


class DIPProtocol(Strict):
    """The paper's DIP experiment (section V-C): purify sampled test images and score them."""

    classifier: str = Field(description="a model of the suite (the paper: the blur-augmented ResNet-18)")
    per_category: Integer = Field(10, ge=1, le=MAX_COUNT, description="images sampled per category")
    calibration_per_category: Integer = Field(
        2, ge=0, le=MAX_COUNT, description="held-out images per category for readout: auto")
    thresholds: list[Number] = Field(default_factory=lambda: [0.5, 0.25], min_length=1)
    params: DIPConfig = Field(default_factory=DIPConfig, description="DIP settings (`DIPConfig`)")
    trajectory_points: Integer = Field(100, ge=2, le=MAX_COUNT, description="P(real) recorded at this many iterations")
    adaptive: DIPAdaptiveConfig | None = Field(
        None, description="adaptive attacks through DIP (`DIPAdaptiveConfig`): images, pgd, cw_l2")
    _given_params: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[Number]) -> list[Number]:
        if any(not 0.0 < t < 1.0 for t in v):
            raise ValueError("thresholds must lie in (0, 1)")
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _keep_given(cls, data: Any, handler: Any) -> DIPProtocol:
        """Remember `params` as the suite wrote them: the `dip` cell's key digests this section's dump, whose
        `params` are those (so a default filled in, or an integer read as a float, re-keys nothing)."""
        model = handler(data)
        given = data.get("params") if isinstance(data, dict) else None
        if isinstance(given, BaseModel):
            given = given.model_dump(mode="json", exclude_unset=True)
        if isinstance(given, dict):
            model._given_params = copy.deepcopy(given)
        return model

    @field_serializer("params")
    def _params_as_given(self, params: DIPConfig) -> dict[str, Any]:
        return copy.deepcopy(self._given_params)
