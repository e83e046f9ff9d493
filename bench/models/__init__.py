"""Detectors: registry, factory, checkpoints, training and toolkit estimators.

`Detector` and `ModelSpec` are imported on first use (they import torch); the registry is light, so listing and
validating models needs no torch."""

from __future__ import annotations

from typing import Any

from bench.models.registry import create_model, list_models, register_model

__all__ = ["Detector", "ModelSpec", "create_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    if name in ("Detector", "ModelSpec"):
        from bench.models import detector  # lazy: torch

        return getattr(detector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
