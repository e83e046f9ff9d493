"""The statistics of PREDICT and CERTIFY (Cohen, Rosenfeld and Kolter, 2019, section 3.2), vectorised.

- PREDICT returns the top class of n noisy votes when a two-sided binomial test of nA against nB (the top two
  counts) at p = 1/2 rejects at level alpha, and abstains otherwise;
- CERTIFY takes the top class of n0 selection votes, bounds its probability from below with the one-sided
  (1 - alpha) Clopper-Pearson bound on n fresh estimation votes, pA_lower = Beta.ppf(alpha; nA, n - nA + 1),
  and certifies the L2 radius sigma * Phi^-1(pA_lower) when pA_lower > 1/2 (abstains otherwise).
"""

from __future__ import annotations

import numpy as np

ABSTAIN = -1  # the class PREDICT and CERTIFY return when they abstain


def binomial_p_value(n_top: np.ndarray, n_second: np.ndarray) -> np.ndarray:
    """Two-sided p-value of the binomial test of `n_top` successes in `n_top + n_second` trials at p = 1/2
    (as `scipy.stats.binomtest(...).pvalue`; the distribution is symmetric, so twice the upper tail, at most 1)."""
    from scipy.stats import binom  # lazy: scipy is slow to import

    top = np.maximum(n_top, n_second).astype(np.int64)
    total = (np.asarray(n_top) + np.asarray(n_second)).astype(np.int64)
    return np.minimum(1.0, 2.0 * binom.sf(top - 1, total, 0.5))


def predict_from_counts(counts: np.ndarray, alpha: float) -> np.ndarray:
    """PREDICT from vote counts (N x C): the top class, or ABSTAIN where the test does not reject at `alpha`."""
    order = np.argsort(-counts, axis=1, kind="stable")
    rows = np.arange(len(counts))
    n_top, n_second = counts[rows, order[:, 0]], counts[rows, order[:, 1]]
    return np.where(binomial_p_value(n_top, n_second) <= alpha, order[:, 0], ABSTAIN)


def clopper_pearson_lower(k: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """The one-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion from k of n (0 where k = 0)."""
    from scipy.stats import beta  # lazy: scipy is slow to import

    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, out, 0.0)


def certified_radius(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    """sigma * Phi^-1(pA_lower) where pA_lower > 1/2; NaN where CERTIFY abstains."""
    from scipy.stats import norm  # lazy: scipy is slow to import

    p = np.asarray(p_lower, dtype=np.float64)
    return np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), np.nan)


def certify_from_counts(selection: np.ndarray, estimation: np.ndarray, n: int, alpha: float,
                        sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CERTIFY from the selection votes (N x C, n0 each) and the estimation votes (N x C, n each):
    (class or ABSTAIN, radius or NaN, nA = the estimation votes for the selected class, pA_lower)."""
    top = selection.argmax(axis=1)
    n_a = estimation[np.arange(len(estimation)), top]
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    radius = certified_radius(p_lower, sigma)
    return np.where(np.isnan(radius), ABSTAIN, top), radius, n_a, p_lower
