"""The `smoothing` defense: Gaussian noise augmentation in training, the smoothed detector at evaluation.

Named under a model (`defense: {smoothing: {sigma: 0.25}}`), it trains the detector on noisy copies of its
training images, as Cohen et al. do: every image gets N(0, sigma^2 I) noise (drawn from the training
generator), clipped to [0, 1]. Named under `defenses:` (`use: smoothing`), it wraps any detector into
`SmoothedDetector`: its prediction is PREDICT (the majority vote of `n` noisy copies, abstaining unless a
two-sided binomial test rejects at `alpha`), and its forward, which attacks differentiate, is the soft
smoothed classifier (log of the mean softmax over `eot` noise samples per image). A detector is usually
smoothed at the sigma it was trained with; any sigma and any detector of the suite are allowed.

An abstention scores P(real) = 0.5: an attacked fake counts as not detected (the attack succeeded), and the
clean metrics count it as wrong for both classes (`bench.results.metrics.classification_metrics`' `abstain`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench import FAKE, REAL
from bench.defenses.base import TrainingDefense, WrapperDefense
from bench.defenses.builtin_params import smoothing_params
from bench.models.detector import Detector, ModelSpec
from bench.smoothing.sampling import SoftSmoothed, image_seeds, vote_counts
from bench.smoothing.stats import ABSTAIN, certify_from_counts, predict_from_counts


class RandomizedSmoothing(TrainingDefense, WrapperDefense):
    """sigma: the noise's standard deviation in [0, 1] pixel units. Evaluation only: `n` PREDICT samples per
    image, its test level `alpha`, `eot` noise samples per forward pass of the soft classifier, `batch`
    noisy images per forward pass, `seed` of the noise."""

    name = "smoothing"

    def __init__(self, sigma: float = 0.25, n: int = 1000, alpha: float = 0.001, eot: int = 8, batch: int = 256,
                 seed: int = 0) -> None:
        p = smoothing_params(sigma, n, alpha, eot, batch, seed)  # the checks `bench validate` runs without torch
        self.sigma, self.n, self.alpha, self.eot, self.batch, self.seed = (
            p["sigma"], p["n"], p["alpha"], p["eot"], p["batch"], p["seed"])

    # ------------------------------------------------------------------ training
    def augment(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return (x + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)).clamp_(0.0, 1.0)

    # ------------------------------------------------------------------ evaluation
    def wrap(self, detector: Detector) -> SmoothedDetector:
        return SmoothedDetector(detector, self)

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "sigma": self.sigma, "n": self.n, "alpha": self.alpha,
                "eot": self.eot, "batch": self.batch, "seed": self.seed}

    def __repr__(self) -> str:
        return (f"RandomizedSmoothing(sigma={self.sigma:g}, n={self.n}, alpha={self.alpha:g}, eot={self.eot}, "
                f"batch={self.batch}, seed={self.seed})")


class SmoothedDetector(Detector):
    """A detector smoothed by `RandomizedSmoothing`: forward = the soft smoothed classifier (what ART, Foolbox and
    native attacks differentiate), `predict_proba` = PREDICT (one-hot, 0.5 for an abstention), `certify` =
    CERTIFY. Takes [0, 1] images (identity normalisation: the base detector normalises its own input).

    PREDICT is a function of the image's bytes (its noise is seeded from them), so its answers are kept per
    image: an image scored again (the clean fakes of every attack cell, a stored example twice) costs nothing."""

    def __init__(self, base: Detector, smoothing: RandomizedSmoothing) -> None:
        spec = ModelSpec(arch=f"smoothed-{base.spec.arch}", input_size=base.spec.input_size,
                         num_classes=base.spec.num_classes)
        super().__init__(SoftSmoothed(base, smoothing.sigma, smoothing.eot, smoothing.seed), spec)
        self.smoothing = smoothing
        self._predicted: dict[int, int] = {}  # PREDICT's answer per image (keyed by its noise seed)
        self.to(base.device)

    @property
    def base(self) -> Detector:
        return self.net.base

    @property
    def sigma(self) -> float:
        return self.smoothing.sigma

    def votes(self, x: torch.Tensor, count: int, tag: str) -> np.ndarray:
        """The base detector's votes on `count` noisy copies of each image (N x num_classes), noise seeded by `tag`."""
        s = self.smoothing
        return vote_counts(self.base, x, count, s.sigma, image_seeds(x, s.seed, tag), s.batch).numpy()

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """PREDICT: the class of each image, or ABSTAIN (-1)."""
        s = self.smoothing
        seeds = image_seeds(x, s.seed, "predict")
        rows = list({k: i for i, k in enumerate(seeds) if k not in self._predicted}.values())  # one per new image
        if rows:
            counts = vote_counts(self.base, x[rows], s.n, s.sigma, [seeds[i] for i in rows], s.batch).numpy()
            for i, c in zip(rows, predict_from_counts(counts, s.alpha), strict=True):
                self._predicted[seeds[i]] = int(c)
        return np.array([self._predicted[k] for k in seeds], dtype=np.int64)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float) -> dict[str, np.ndarray]:
        """CERTIFY on each image: class (or ABSTAIN), radius (NaN when abstaining), nA and pA_lower."""
        selection = self.votes(x, n0, "select")
        estimation = self.votes(x, n, "estimate")
        cls, radius, n_a, p_lower = certify_from_counts(selection, estimation, n, alpha, self.sigma)
        return {"class": cls, "radius": radius, "n_a": n_a, "p_lower": p_lower}

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """PREDICT as probabilities: one-hot on the predicted class, (0.5, 0.5) where it abstains."""
        was_training = self.training
        self.eval()
        cls = torch.from_numpy(self.predict(x))
        self.train(was_training)
        p_real = torch.where(cls == REAL, 1.0, torch.where(cls == FAKE, 0.0, 0.5))
        return torch.stack([1.0 - p_real, p_real], dim=1)


def abstained(p_real: np.ndarray) -> np.ndarray:
    """Where a smoothed detector's P(real) says it abstained."""
    return np.asarray(p_real) == 0.5


__all__ = ["ABSTAIN", "RandomizedSmoothing", "SmoothedDetector", "abstained"]
