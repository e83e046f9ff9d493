"""Metrics with their uncertainty: Wilson 95% intervals on every accuracy, AUROC, precision/recall; the mean
over training replicas with an interval covering seeds and test sampling; ranks that tie overlapping intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench import FAKE, REAL

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    """k successes out of n, with its Wilson score 95% interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def as_dict(self) -> dict:
        lo, hi = self.interval
        return {"k": self.k, "n": self.n, "value": self.value, "lo": lo, "hi": hi}


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n = 0."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_quantile(df: int, q: float = 0.975) -> float:
    """Student's t quantile with `df` degrees of freedom."""
    from scipy.stats import t  # lazy: scipy is slow to import and only replicated suites need it

    return float(t.ppf(q, df))


def replica_mean(props: list[dict]) -> dict:
    """The mean of one proportion over k training replicas, each scored on (about) the same n test images,
    with a 95% interval covering both test sampling and training seeds (docs/intervals.md):

    p = mean of the replicas' values; n = mean of their n (rounded); each side's half-width is the Wilson
    interval's side at (p, n) and the Student-t half-width t_{0.975, k-1} * sd / sqrt(k) of the replica values,
    added in quadrature; clipped to [0, 1]. With k = 1 it is the replica's own Wilson interval, exactly.
    Returns value, lo, hi, n, k (successes, rounded mean), seeds (k) and the per-replica dicts."""
    ok = [p for p in props if p and p.get("n")]
    if not ok:
        return {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0, "k": 0, "seeds": len(props),
                "replicas": list(props)}
    if len(ok) == 1:
        return {**ok[0], "seeds": 1, "replicas": ok}
    values = np.array([p["value"] for p in ok], dtype=np.float64)
    n = int(round(float(np.mean([p["n"] for p in ok]))))
    mean = float(values.mean())
    w_lo, w_hi = wilson_interval(mean * n, n)
    spread = t_quantile(len(ok) - 1) * float(values.std(ddof=1)) / math.sqrt(len(ok))
    lo = mean - math.hypot(mean - w_lo, spread)
    hi = mean + math.hypot(w_hi - mean, spread)
    return {"value": mean, "lo": max(0.0, lo), "hi": min(1.0, hi), "n": n, "k": int(round(mean * n)),
            "seeds": len(ok), "replicas": ok}


def auroc(labels: np.ndarray, p_real: np.ndarray) -> float:
    """Area under the ROC curve for P(real) against label real = 1 (Mann-Whitney, ties count half)."""
    labels = np.asarray(labels)
    scores = np.asarray(p_real, dtype=np.float64)
    pos, neg = scores[labels == REAL], scores[labels == FAKE]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def classification_metrics(labels: np.ndarray, p_real: np.ndarray, threshold: float = 0.5,
                           abstain: np.ndarray | None = None) -> dict:
    """Table I: accuracy, AUROC, and precision/recall for each class, each proportion with n and CI.

    `abstain` marks images on which the detector gave no answer (a smoothed detector's PREDICT): wrong for
    accuracy and recall whatever their class, predicted as neither class for precision; `abstained` says how many.
    """
    labels = np.asarray(labels)
    pred = np.where(np.asarray(p_real) >= threshold, REAL, FAKE)
    if abstain is not None:
        pred = np.where(np.asarray(abstain, dtype=bool), -1, pred)
    out: dict = {
        "accuracy": Proportion(int((pred == labels).sum()), len(labels)).as_dict(),
        "auroc": auroc(labels, p_real),
        "n": int(len(labels)),
    }
    for cls, name in ((FAKE, "fake"), (REAL, "real")):
        tp = int(((pred == cls) & (labels == cls)).sum())
        out[f"{name}_precision"] = Proportion(tp, int((pred == cls).sum())).as_dict()
        out[f"{name}_recall"] = Proportion(tp, int((labels == cls).sum())).as_dict()
    if abstain is not None:
        out["abstained"] = Proportion(int((pred == -1).sum()), len(labels)).as_dict()
    return out


def perturbation_norms(clean: np.ndarray, adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image L2 and L-inf norms of adv - clean (pixel units in [0, 1])."""
    d = (np.asarray(adv, dtype=np.float64) - np.asarray(clean, dtype=np.float64)).reshape(len(clean), -1)
    return np.linalg.norm(d, axis=1), np.abs(d).max(axis=1) if d.size else np.zeros(len(clean))


def summary(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan")}
    return {"mean": float(v.mean()), "median": float(np.median(v))}
