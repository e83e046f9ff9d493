"""What scoring adds for a smoothed detector (`bench.cells.scoring` calls these for every variant; they return
nothing for a detector that is not smoothed).

The certificate of an attacked fake is computed on the image the smoothed detector receives when the fake is
scored unperturbed: the stored fake, x0 = storage(x) (8-bit, or a JPEG round trip). An attack's stored example
storage(x_adv) is what the detector receives under attack. So the L2 that a certified radius bounds is
||storage(x_adv) - storage(x)||, which an attack cell on a smoothed detector records per image, with the vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.attacks.storage import quantise
from bench.models.detector import Detector
from bench.smoothing.defense import SmoothedDetector, abstained

VOTES = {0.0: "fake", 1.0: "real", 0.5: "abstain"}


def abstentions(det: Detector, p_real: np.ndarray) -> np.ndarray | None:
    """Where a smoothed detector abstained (None for any other detector)."""
    return abstained(p_real) if isinstance(det, SmoothedDetector) else None


def stored(images: torch.Tensor, evaluation: Any) -> torch.Tensor:
    """[0, 1] images as the suite stores them (`evaluation.storage`), back in [0, 1]."""
    return quantise(images, evaluation.storage, evaluation.jpeg_quality).float().div(255)


def l2_from_stored(clean: torch.Tensor, adv_stored: torch.Tensor, evaluation: Any) -> np.ndarray:
    """Per image, ||adv_stored - storage(clean)||_2: the perturbation of the certified input."""
    d = (adv_stored.double() - stored(clean, evaluation).double()).flatten(1)
    return d.norm(dim=1).numpy()


def smoothed_attack_metrics(det: Detector, ids: list[str], clean: torch.Tensor, adv_stored: torch.Tensor,
                            p_adv: np.ndarray, evaluation: Any) -> dict[str, Any]:
    """For an attack cell scored on a smoothed detector: per image, the L2 of its stored example from the stored
    clean fake, and PREDICT's vote on it ("fake", "real" or "abstain"). Empty for other detectors."""
    if not isinstance(det, SmoothedDetector):
        return {}
    l2 = l2_from_stored(clean, adv_stored, evaluation)
    return {"smoothed": {"ids": list(ids), "l2_from_stored": [float(f"{v:.6g}") for v in l2],
                         "vote": [VOTES[float(p)] for p in np.asarray(p_adv)], "sigma": det.sigma}}
