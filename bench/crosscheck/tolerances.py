"""What counts as agreement between attack implementations (`bench crosscheck --tol NAME=VALUE`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerances:
    """What counts as agreement. Deterministic attacks are compared image by image; the others by strength."""

    max_abs_diff: float = 1e-6
    success_agreement: float = 1.0
    success_rate_slack: float = 0.0
    median_l2_ratio: float = 1.05
    optimality_slack: float = 0.05

    @staticmethod
    def describe() -> dict[str, str]:
        return {
            "max_abs_diff": "deterministic attacks: max |x_adv(subject) - x_adv(reference)| over all pixels <= tol",
            "success_agreement": "deterministic attacks: share of images with the same success outcome >= tol",
            "success_rate_slack": "other attacks: success rate(subject) >= success rate(reference) - tol",
            "median_l2_ratio": "minimum-norm attacks: median L2(subject) / median L2(reference), over images both "
                               "broke, <= tol",
            "optimality_slack": "other attacks: optimality(subject) >= the best reference's optimality - tol "
                                "(AttackBench's optimality: 1 - (area under the curve - best area) / (worst - best "
                                "area))",
        }
