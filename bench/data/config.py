"""`DataConfig`: the suite's `data:` section, where the images come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bench.config.strict import Strict
from bench.config.types import MAX_COUNT, Integer, Number


class DataConfig(Strict):
    """Where images come from. `synthetic-faces` is generated; `folder` and `csv` read the user's files."""

    source: Literal["synthetic-faces", "folder", "csv"] = "synthetic-faces"
    path: str | None = None
    n: Integer = Field(2000, ge=8, le=MAX_COUNT, description="synthetic-faces: number of images (balanced)")
    size: Integer = Field(64, ge=16, le=1024, description="square image size after the resize rule")
    train_fraction: Number = Field(0.75, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _path(self) -> DataConfig:
        if self.source != "synthetic-faces" and not self.path:
            raise ValueError(f"source {self.source!r} needs a path")
        return self
