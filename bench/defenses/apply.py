"""Turn a detector plus an evaluation-time defense into the defended detector that gets scored.

A preprocessor defense becomes the first layer of the network, so ART, Foolbox and native attacks
all see it (with its declared gradient: exact or straight-through); a wrapper defense returns its
own detector. Either is checked on a sample batch first, and a broken contract is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.defenses.base import as_detector, evaluation_kind
from bench.defenses.contract import check_defense, check_logits, wrap_detector
from bench.defenses.registry import create_defense
from bench.errors import BenchError
from bench.models.detector import Detector


class _Preprocess(nn.Module):
    """Runs an ART-style preprocessor (`forward(x, y) -> (x', y)`) as a network layer."""

    def __init__(self, defense: Any) -> None:
        super().__init__()
        self.defense = defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.defense.forward(x)[0]


class _Normalise(nn.Module):
    def __init__(self, like: Detector) -> None:
        super().__init__()
        self.register_buffer("mean", like.mean.clone())
        self.register_buffer("std", like.std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


Calibration = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def preprocessed(base: Detector, defense: Any) -> Detector:
    """`base` behind a preprocessor defense (ART-style `forward(x, y) -> (x', y)`), as one detector taking [0, 1]
    images: the preprocessor's declared gradient (exact or straight-through) is what attacks differentiate."""
    return as_detector(nn.Sequential(_Preprocess(defense), _Normalise(base), base.net), like=base)


def apply_defense(base: Detector, name: str, use: str, params: dict, base_dir: Path,
                  check_contract: bool = False, calibration: Calibration | None = None) -> Detector:
    """The defended detector for the suite's defense `name` (`use` + `params`) around `base`.

    With `check_contract` (the run's preflight), the defense's full contract is exercised first
    (`bench.defenses.contract.check_defense`: shapes, range, finiteness, and a preprocessor that claims
    to be differentiable must keep its output connected to the input's autograd graph)."""
    where = f"defenses.{name}"
    defense = create_defense(use, params, where=where, base_dir=base_dir)
    defense.name = where  # contract errors at run time name it as the suite does
    needs = getattr(defense, "needs_calibration", None)
    if callable(needs) and needs():
        if calibration is None:
            raise BenchError(where, f"{use} must be calibrated before use (e.g. DIP's readout: auto), and no "
                                    "calibration images were given")
        images, labels = calibration()
        defense.calibrate(images.to(base.device), labels, base)
    probe = torch.rand(2, 3, base.spec.input_size, base.spec.input_size, generator=torch.Generator().manual_seed(0))
    kind = evaluation_kind(defense)  # a defense of two kinds (smoothing) acts here as its evaluation-time kind
    if check_contract:
        check_defense(defense, base, probe, kind=kind)
    if kind == "preprocessor":
        det = preprocessed(base, defense)
    else:
        det = wrap_detector(defense, base)  # the contract's one rule: `wrap` returns a Detector
    det = det.eval()
    with torch.no_grad():
        check_logits(where, probe, det(probe.to(det.device)), base.spec.num_classes)
    return det
