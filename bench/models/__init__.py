"""Detectors: registry, factory, checkpoints, training and toolkit estimators."""

from bench.models.detector import Detector, ModelSpec
from bench.models.registry import create_model, list_models, register_model

__all__ = ["Detector", "ModelSpec", "create_model", "list_models", "register_model"]
