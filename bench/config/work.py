"""Caps on the work one attack (or DIP) may ask for: anything larger is a typo, and would run until killed."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError

WORK_CAPS = {
    "steps": 100_000, "max_iterations": 100_000, "iterations": 100_000, "queries": 100_000,  # iterations
    "restarts": 1_000, "binary_search_steps": 1_000, "eot": 1_000,  # repeats of those iterations
}
MAX_PASSES = 10_000_000  # iterations x repeats: gradient (or query) passes per image, per attack
_REPEATS = ("restarts", "binary_search_steps", "eot")


def check_work(params: Any, where: str) -> None:
    """Refuse an iteration count or a repeat count over WORK_CAPS, or a product of them over MAX_PASSES, in a
    parameter mapping and the mappings nested in it (an ensemble's members, DIP's adaptive attacks)."""
    if not isinstance(params, dict):
        return
    for key, value in params.items():
        cap = WORK_CAPS.get(str(key))
        if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise BenchError(f"{where}.{key}", f"{value} is over the cap of {cap:,} (documented in README: "
                             "Bad input); a longer run is a typo on this harness")
        if isinstance(value, dict):
            check_work(value, f"{where}.{key}")
    iterations = max((v for k, v in params.items() if k in WORK_CAPS and k not in _REPEATS
                      and isinstance(v, int) and not isinstance(v, bool)), default=1)
    passes = iterations
    for k in _REPEATS:
        v = params.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            passes *= v
    if passes > MAX_PASSES:
        raise BenchError(where, f"{passes:,} passes per image (iterations x restarts x binary search steps x EOT) "
                         f"is over the cap of {MAX_PASSES:,}")
