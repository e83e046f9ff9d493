"""Making an attack point's examples, the pieces the craft cell (`bench.cells.craft`) and the adaptive DIP cells
(`bench.dip.adaptive`) share: the attack on a batch with its restarts, its measured cost (forward and backward
passes, seconds), and which images it gave back unchanged.

Each caller says how a restart's result is judged (`Fooled`): the craft cell on the delivered 8-bit image, the
adaptive cell on the attack's output through the defended detector.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.attacks.counting import PassCount, count_passes
from bench.attacks.registry import run_attack
from bench.attacks.restarts import with_restarts
from bench.attacks.storage import to_uint8
from bench.models.detector import Detector

# fooled(adv, x, y) -> which images of a restart's batch the attack broke (bool, CPU); adv and x on the attack's
# device, y on the CPU
Fooled = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def run_point(attack: str, backend: str, params, restarts: int, det: Detector, x: torch.Tensor, y: torch.Tensor,
              fooled: Fooled) -> torch.Tensor:
    """The attack's output on a batch (`x`, `y` on the attack's device); with `restarts` > 1, each restart runs on
    the images no earlier one broke (`fooled`), and the batch comes back on the CPU."""
    if restarts <= 1:
        return run_attack(attack, backend, det, x, y, params)

    def once(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xd = xs.to(x.device)
        adv = run_attack(attack, backend, det, xd, ys.to(x.device), params)
        return fooled(adv, xd, ys), adv

    return with_restarts(x.cpu(), y.cpu(), torch.zeros(len(x), dtype=torch.bool), restarts, once)


@dataclass
class Measured:
    """What making examples cost: the detector's forward and backward passes, and the seconds."""

    passes: PassCount
    seconds: float


def measured(det: Detector, make: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, Measured]:
    """`make()` with the passes through `det` counted and the time taken (a score-based attack's queries are its
    forward passes)."""
    t0 = time.perf_counter()
    with count_passes(det) as passes:
        out = make()
    return out, Measured(passes, time.perf_counter() - t0)


def unchanged(delivered: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per image, whether the attack gave it back as it was, to 8-bit precision (`delivered`: uint8 NCHW)."""
    return (delivered == to_uint8(images)).flatten(1).all(1)


__all__ = ["Fooled", "Measured", "measured", "run_point", "unchanged"]
