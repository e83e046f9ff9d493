"""The paired, seed-stratified bootstrap behind the defense ranking (docs/intervals.md), as pure numpy.

Data: per model, an array `x[s, i]` over training seeds s (replica index, the same for every model) and
attacked fakes i (the same images, in the same order, for every model and seed): 0/1 robust outcomes, or
per-image minimum-norm L2 (inf where no attack fooled the model).

One bootstrap replicate draws k seed indices with replacement, then for each drawn seed n image indices with
replacement (two stages), and computes the statistic: the mean over the drawn seeds of the per-seed mean
(robust accuracy) or median (minimum-norm L2) over the drawn images. Every model is evaluated on the SAME
draws, so the difference of two models' replicates is the paired bootstrap of their difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

B_DEFAULT = 2000  # bootstrap replicates
RNG_SEED = 2021  # fixed: the same store gives the same intervals
LEVEL = 0.95
STATS = ("mean", "median")


@dataclass(frozen=True)
class Draws:
    """B bootstrap replicates of (seeds, images): `seeds[b, j]` is replicate b's j-th drawn seed index and
    `images[b, j, :]` the image indices drawn within it."""

    seeds: np.ndarray  # (B, k) int
    images: np.ndarray  # (B, k, n) int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.images.shape


def draw(k: int, n: int, b: int = B_DEFAULT, seed: int = RNG_SEED) -> Draws:
    """The replicates' indices, from one seeded generator: first every seed draw, then every image draw."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, k, size=(b, k))
    images = rng.integers(0, n, size=(b, k, n))
    return Draws(seeds, images)


def point(x: np.ndarray, stat: str) -> float:
    """The statistic on the data itself: mean over seeds of the per-seed mean or median over images."""
    per_seed = _reduce(np.asarray(x, dtype=np.float64), stat, axis=1)
    return float(per_seed.mean())


def replicates(x: np.ndarray, stat: str, d: Draws) -> np.ndarray:
    """The statistic on each bootstrap replicate: shape (B,)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (d.shape[1], d.shape[2]):
        raise ValueError(f"data of shape {x.shape} against draws for (seeds, images) = {d.shape[1:]}")
    drawn = x[d.seeds[:, :, None], d.images]  # (B, k, n)
    return _reduce(drawn, stat, axis=2).mean(axis=1)


def _reduce(x: np.ndarray, stat: str, axis: int) -> np.ndarray:
    if stat not in STATS:
        raise ValueError(f"unknown statistic {stat!r}; expected one of {STATS}")
    return x.mean(axis=axis) if stat == "mean" else np.median(x, axis=axis)


def difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a - b, elementwise, where two infinite values (neither model broken) differ by 0, not NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = a - b
    return np.where(np.isinf(a) & np.isinf(b) & (a == b), 0.0, out)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, by order statistics (no interpolation, so infinite
    replicates stay infinite): the floor((1-level)/2 * (B-1))-th and ceil((1+level)/2 * (B-1))-th of the
    sorted replicates."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    last = len(v) - 1
    lo = v[int(np.floor((1 - level) / 2 * last))]
    hi = v[int(np.ceil((1 + level) / 2 * last))]
    return float(lo), float(hi)


@dataclass(frozen=True)
class Comparison:
    """a against b: the point difference, its paired percentile interval, and whether it excludes 0."""

    diff: float
    lo: float
    hi: float

    @property
    def separated(self) -> bool:
        return self.lo > 0 or self.hi < 0


def compare(xa: np.ndarray, xb: np.ndarray, stat: str, d: Draws,
            ra: np.ndarray | None = None, rb: np.ndarray | None = None) -> Comparison:
    """The paired comparison of two models' data on the same draws (`ra`, `rb`: their replicates, when
    computed already)."""
    ra = replicates(xa, stat, d) if ra is None else ra
    rb = replicates(xb, stat, d) if rb is None else rb
    lo, hi = interval(difference(ra, rb))
    return Comparison(float(difference(point(xa, stat), point(xb, stat))), lo, hi)


def ranks(values: dict[str, float], separated: dict[tuple[str, str], bool]) -> dict[str, tuple[int, bool]]:
    """(rank, tied) per name: 1 + the number of names whose value is higher AND whose comparison with this one
    is separated (`separated[(a, b)]`, either order). Names sharing a rank are `tied`."""
    def sep(a: str, b: str) -> bool:
        return separated.get((a, b), separated.get((b, a), False))

    rank = {a: 1 + sum(1 for b in values if values[b] > values[a] and sep(a, b)) for a in values}
    counts: dict[int, int] = {}
    for r in rank.values():
        counts[r] = counts.get(r, 0) + 1
    return {a: (r, counts[r] > 1) for a, r in rank.items()}
