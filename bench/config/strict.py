"""`Strict`: the base of every configuration model read from a suite (an unknown field is an error)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
