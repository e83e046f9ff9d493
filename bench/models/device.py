"""Device choice: CUDA when present, the CPU otherwise."""

from __future__ import annotations

import torch

from bench.errors import BenchError


def resolve_device(name: str | None = None) -> torch.device:
    """`None`/"auto" picks CUDA when available; "cuda" without a GPU is an error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device", "cuda was asked for but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise BenchError("--device", f"expected cpu, cuda or auto, got {name!r}")
    return torch.device(name)
