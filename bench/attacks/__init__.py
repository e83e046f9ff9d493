"""Attacks: declarations and parameter models (params), the registry, and the backends that register
themselves on import (ART and Foolbox in toolkits, our own batched ones in native)."""

from bench.attacks import native, params, toolkits  # noqa: F401  (imported for their registrations)
