"""Choosing the readout: the DIP iteration whose averaged output is the purified image.

`choose_readout` purifies held-out calibration images once, snapshots them at every candidate of
`DIPConfig.readout_range`, and picks the candidate at which the classifier is most accurate
(`readout: auto`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.dip.config import DIPConfig
from bench.dip.engine import evaluating, predict_p_real, purify
from bench.errors import BenchError


@dataclass(frozen=True)
class ReadoutChoice:
    """The readout chosen on a calibration subset, with the accuracy at every candidate."""

    iteration: int
    accuracy: dict[int, float]
    n_images: int
    threshold: float

    def as_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "accuracy": {str(k): v for k, v in self.accuracy.items()},
            "n_images": self.n_images,
            "threshold": self.threshold,
        }


def pick_readout(accuracy: dict[int, float]) -> int:
    """The candidate of highest accuracy; ties go to the earlier iteration."""
    if not accuracy:
        raise BenchError("dip.readout_range", "no readout candidates")
    best = max(accuracy.values())
    return min(t for t, a in accuracy.items() if a >= best - 1e-12)


def choose_readout(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    config: DIPConfig,
    seed: int = 0,
    threshold: float = 0.5,
    quiet: bool = True,
    keys: Sequence[str] | None = None,
) -> ReadoutChoice:
    """Pick the readout in `config.readout_range` that maximises the classifier's accuracy on the
    purified calibration images (P(real) >= threshold means real, label 1)."""
    cands = config.candidates()
    if not cands:
        raise BenchError("dip.readout_range", f"no candidate in {config.readout_range} is within the iterations")
    if len(labels) != len(images) or len(images) == 0:
        raise BenchError("dip.calibration", f"need >= 1 image and one label each, got {len(images)}, {len(labels)}")
    res = purify(images, config.model_copy(update={"readout": "auto"}), seed, candidates=cands, quiet=quiet, keys=keys)
    y = torch.as_tensor(labels).cpu().numpy().astype(np.int64)
    acc = {}
    with evaluating(classifier):
        for t in cands:
            p = predict_p_real(classifier, res.snapshots[t])
            acc[t] = float(((p >= threshold).astype(np.int64) == y).mean())
    return ReadoutChoice(pick_readout(acc), acc, len(images), threshold)
