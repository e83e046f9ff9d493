"""Deterministic stratified train/test split (the paper's 75/25), group-aware when the data has groups.

Without groups or subsets: per class, a seeded permutation. With a `subset` per image, the split is
stratified per (subset, class), so every subset is split 75/25. With a `group` per image (the source
video or identity), whole groups are assigned: each group lands on one side, so frames of one video
never sit in both train and test.
"""

from __future__ import annotations

import numpy as np

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.errors import BenchError


def stratified_split(data: ImageSet, train_fraction: float = 0.75, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Per class, a seeded permutation; the first round(train_fraction * n_class) go to train.

    With subsets or groups: see `grouped_split`."""
    if not 0.0 < train_fraction < 1.0:
        raise BenchError("data.train_fraction", f"must be in (0, 1), got {train_fraction}")
    if data.groups is not None or data.subsets is not None:
        return grouped_split(data, train_fraction, seed)
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
    train, test = np.flatnonzero(arr == "train"), np.flatnonzero(arr == "test")
    if data.groups is not None:
        both = sorted({data.groups[i] for i in train} & {data.groups[i] for i in test})
        if both:
            raise BenchError("data.split", f"group {both[0]!r} has rows in both train and test ({len(both)} such "
                             "groups): frames of one video or identity must stay on one side")
    for name, idx in (("train", train), ("test", test)):
        for label, cls in ((FAKE, "fake"), (REAL, "real")):
            if not (labels[idx] == label).any():
                raise BenchError(where, f"the split column leaves no {cls} images in {name}; each split needs "
                                 "both classes (train to learn, test to score)")
    return data.subset(train), data.subset(test)


def grouped_split(data: ImageSet, train_fraction: float = 0.75, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Whole groups to one side, stratified per (subset, class).

    Each group belongs to the stratum of its first image; per stratum the groups are permuted (seeded) and the
    first k go to train, k chosen so that train holds as close to `train_fraction` of the stratum's images as
    whole groups allow (at least one group on each side). Without groups every image is its own group."""
    labels = data.labels.numpy()
    groups = data.groups if data.groups is not None else [f"#{i}" for i in range(len(data))]
    subsets = data.subsets if data.subsets is not None else [""] * len(data)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    strata: dict[tuple[str, int], list[str]] = {}
    for g, idx in members.items():
        strata.setdefault((subsets[idx[0]], int(labels[idx[0]])), []).append(g)
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    for (subset, label), names in sorted(strata.items()):
        if len(names) < 2:
            where = f"subset {subset!r}, " if subset else ""
            raise BenchError("data", f"{where}class {label} has {len(names)} group(s): too few to split")
        names = [names[i] for i in rng.permutation(len(names))]
        sizes = np.cumsum([len(members[g]) for g in names])
        k = int(np.argmin(np.abs(sizes - train_fraction * sizes[-1]))) + 1
        k = min(max(k, 1), len(names) - 1)
        for g in names[:k]:
            train_idx.extend(members[g])
    train = np.zeros(len(data), dtype=bool)
    train[train_idx] = True
    for label in np.unique(labels):
        if train[labels == label].all() or not train[labels == label].any():
            raise BenchError("data", f"class {int(label)}: too few groups to put some on each side of the split")
    return data.subset(np.flatnonzero(train)), data.subset(np.flatnonzero(~train))
