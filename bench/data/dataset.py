"""The in-memory image set every part of the harness exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench import FAKE, REAL


@dataclass
class ImageSet:
    """Images as float32 NCHW in [0, 1], labels int64 (fake = 0, real = 1), one id per image.

    `subsets` (a manifest's subset or source column) and `groups` (its group column: the source video or
    identity) are per image when the data has them, else None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    subsets: list[str] | None = field(default=None)
    groups: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be N x 3 x H x W, got {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels) or len(self.images) != len(self.ids):
            raise ValueError("images, labels and ids must have the same length")
        for name in ("subsets", "groups"):
            extra = getattr(self, name)
            if extra is not None and len(extra) != len(self.ids):
                raise ValueError(f"{name} must have one entry per image")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | list[int] | torch.Tensor) -> ImageSet:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        pick = idx.tolist()
        return ImageSet(self.images[idx], self.labels[idx], [self.ids[i] for i in pick],
                        None if self.subsets is None else [self.subsets[i] for i in pick],
                        None if self.groups is None else [self.groups[i] for i in pick])

    def only(self, label: int) -> ImageSet:
        return self.subset(torch.nonzero(self.labels == label).flatten())

    @property
    def n_fake(self) -> int:
        return int((self.labels == FAKE).sum())

    @property
    def n_real(self) -> int:
        return int((self.labels == REAL).sum())

    @staticmethod
    def from_uint8(images: np.ndarray, labels: np.ndarray, ids: list[str], subsets: list[str] | None = None,
                   groups: list[str] | None = None) -> ImageSet:
        """From N x H x W x 3 uint8 arrays."""
        t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        return ImageSet(t.contiguous(), torch.as_tensor(labels, dtype=torch.int64), list(ids), subsets, groups)
