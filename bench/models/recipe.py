"""`Recipe`: every hyperparameter of training a built-in detector (a model's `recipe:` in the suite)."""

from __future__ import annotations

from pydantic import Field

from bench.config.strict import Strict
from bench.config.types import MAX_COUNT, Integer, Number


class Recipe(Strict):
    """Every hyperparameter of training (the paper's defaults); part of the checkpoint's cache key."""

    epochs: Integer = Field(5, ge=1, le=10_000)
    batch_size: Integer = Field(16, ge=1, le=MAX_COUNT)
    lr: Number = Field(1e-3, gt=0.0)
    momentum: Number = Field(0.9, ge=0.0, lt=1.0)
    step_size: Integer = Field(7, ge=1, le=MAX_COUNT)
    gamma: Number = Field(0.1, gt=0.0, le=1.0)
    weight_decay: Number = Field(0.0, ge=0.0)
