"""Deterministic stratified train/test split (the paper's 75/25)."""

from __future__ import annotations

import numpy as np

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.errors import BenchError


def stratified_split(data: ImageSet, train_fraction: float = 0.75, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Per class, a seeded permutation; the first round(train_fraction * n_class) go to train."""
    if not 0.0 < train_fraction < 1.0:
        raise BenchError("data.train_fraction", f"must be in (0, 1), got {train_fraction}")
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    train_idx, test_idx = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(train_fraction * len(idx)))
        if k == 0 or k == len(idx):
            name = "fake" if int(label) == FAKE else "real"
            raise BenchError("data", f"{len(idx)} {name} image(s) are too few to split {train_fraction:g} / "
                             f"{1 - train_fraction:g} into train and test")
        train_idx.append(idx[:k])
        test_idx.append(idx[k:])
    return data.subset(np.sort(np.concatenate(train_idx))), data.subset(np.sort(np.concatenate(test_idx)))


def split_from_column(data: ImageSet, splits: list[str], where: str = "data.split") -> tuple[ImageSet, ImageSet]:
    """Use a manifest's own split column; each split needs images of both classes."""
    arr = np.asarray(splits)
    labels = data.labels.numpy()
    parts = []
    for name in ("train", "test"):
        idx = np.flatnonzero(arr == name)
        for label, cls in ((FAKE, "fake"), (REAL, "real")):
            if not (labels[idx] == label).any():
                raise BenchError(where, f"the split column leaves no {cls} images in {name}; each split needs "
                                 "both classes (train to learn, test to score)")
        parts.append(idx)
    return data.subset(parts[0]), data.subset(parts[1])
