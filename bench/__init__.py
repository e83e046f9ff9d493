"""bench: a robustness benchmark for deepfake detectors under adversarial attack.

Class convention (as the paper's code): fake = 0, real = 1. AUROC scores P(real).
"""

FAKE: int = 0
REAL: int = 1
CLASS_NAMES: tuple[str, str] = ("fake", "real")

__version__ = "0.1.0"
