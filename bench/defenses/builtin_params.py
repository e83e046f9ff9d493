"""The parameters of bench's built-in defenses, checked without importing the defenses (torch, ART).

Each built-in's class validates its parameters with the function here, so a suite's defense is checked the same
way by `bench validate` (which imports neither torch nor ART) and by a run (which builds the defense).
Every failure is a `BenchError` naming the defense.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from bench.dip.config import DIPConfig
from bench.errors import BenchError, short

SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")
PAPER_REFERENCE_SIZE = math.sqrt(368 * 300)  # the paper's 368 x 300 px images (blur's sigma scales from it)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_lambda(lam: Any, name: str = "lipschitz") -> float:
    if not _number(lam) or not lam >= 0 or lam == float("inf"):
        raise BenchError(name, f"lambda must be a finite number >= 0, got {lam!r}")
    return float(lam)


def lipschitz_params(params: dict[str, Any], name: str = "lipschitz") -> dict[str, Any]:
    """Suite parameters `lambda` (alias `lam`) -> the class's keyword arguments."""
    p = dict(params)
    if "lambda" in p and "lam" in p:
        raise BenchError(name, "give either lambda or lam, not both")
    lam = p.pop("lambda", p.pop("lam", 50.0))
    if p:
        raise BenchError(name, f"unknown parameter(s) {', '.join(sorted(p))}; expected: lambda")
    return {"lam": check_lambda(lam, name)}


def check_blur(fraction: Any = 0.4, sigma: Any = None, reference_size: Any = PAPER_REFERENCE_SIZE,
               name: str = "blur") -> tuple[float, tuple[float, float] | None, float]:
    if not _number(fraction) or not 0.0 <= fraction <= 1.0:
        raise BenchError(name, f"fraction must be a number in [0, 1], got {fraction!r}")
    if sigma is not None:
        if (not isinstance(sigma, (tuple, list)) or len(sigma) != 2 or not all(_number(s) for s in sigma)
                or not 0 <= sigma[0] <= sigma[1]):
            raise BenchError(name, f"sigma must be [lo, hi] with 0 <= lo <= hi (pixels), got {sigma!r}")
        sigma = (float(sigma[0]), float(sigma[1]))
    if not isinstance(reference_size, (int, float)) or not reference_size > 0:
        raise BenchError(name, f"reference_size must be > 0, got {reference_size!r}")
    return float(fraction), sigma, float(reference_size)


def check_jpeg(quality: Any = 75, subsampling: Any = "4:2:0", name: str = "jpeg") -> tuple[int, str]:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise BenchError(name, f"quality must be an integer in [1, 100], got {quality!r}")
    if subsampling not in SUBSAMPLING:
        raise BenchError(name, f"subsampling must be one of {', '.join(SUBSAMPLING)}, got {subsampling!r}")
    return quality, subsampling


def _keywords(fn: Callable, use: str, params: dict[str, Any]) -> None:
    """The error a class's constructor gives for keyword arguments it does not take."""
    try:
        inspect.signature(fn).bind(**params)
    except TypeError as exc:
        raise BenchError(use, f"{use}: bad parameters {short(params, 200)}: {exc}") from None


def _blur(params: dict[str, Any]) -> None:
    def blur(fraction=0.4, sigma=None, reference_size=PAPER_REFERENCE_SIZE): ...  # the class's keywords

    _keywords(blur, "blur", params)
    check_blur(**params)


def _jpeg(params: dict[str, Any]) -> None:
    def jpeg(quality=75, subsampling="4:2:0", device_type="gpu"): ...  # the class's keywords

    _keywords(jpeg, "jpeg", params)
    check_jpeg(params.get("quality", 75), params.get("subsampling", "4:2:0"))


def _dip(params: dict[str, Any]) -> None:
    p = dict(params or {})
    extra = {k: p.pop(k) for k in ("seed", "quiet", "cache_size", "resample") if k in p}
    DIPConfig.from_dict(p, "dip")
    if "resample" in extra and not isinstance(extra["resample"], bool):
        raise BenchError("dip.resample", f"expected true or false, got {extra['resample']!r}")


MAX_SMOOTHING_SAMPLES = 10_000_000


def _bounded(name: str, value: Any, lo: float, hi: float, integer: bool = False) -> float | int:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi or value != value:
        what = "an integer" if integer else "a number"
        raise BenchError("smoothing", f"{name} must be {what} in [{lo:g}, {hi:g}], got {value!r}")
    return value


def smoothing_params(sigma: Any = 0.25, n: Any = 1000, alpha: Any = 0.001, eot: Any = 8, batch: Any = 256,
                     seed: Any = 0) -> dict[str, Any]:
    """Randomized smoothing's parameters, checked (`bench.smoothing.defense.RandomizedSmoothing`)."""
    return {"sigma": float(_bounded("sigma", sigma, 1e-6, 10.0)),
            "n": int(_bounded("n", n, 1, MAX_SMOOTHING_SAMPLES, integer=True)),
            "alpha": float(_bounded("alpha", alpha, 1e-12, 0.5)),
            "eot": int(_bounded("eot", eot, 1, 100_000, integer=True)),
            "batch": int(_bounded("batch", batch, 1, 1_000_000, integer=True)),
            "seed": int(_bounded("seed", seed, 0, 2**32 - 1, integer=True))}


def _smoothing(params: dict[str, Any]) -> None:
    _keywords(smoothing_params, "smoothing", params)
    smoothing_params(**params)


# built-in name -> (its kinds, check of the suite's parameters)
BUILTIN_CHECKS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], Any]]] = {
    "lipschitz": (("training",), lipschitz_params),
    "blur": (("training",), _blur),
    "jpeg": (("preprocessor",), _jpeg),
    "dip": (("preprocessor",), _dip),
    "smoothing": (("training", "wrapper"), _smoothing),
}
