"""Content digests that name cells: of plain data, of files, of a data split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a data split holds tensors: torch is imported where one is digested
    from bench.data.dataset import ImageSet


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_digest(train: ImageSet, test: ImageSet) -> str:
    import torch  # lazy: only a data split needs torch

    h = hashlib.sha256()
    for part in (train, test):
        h.update((part.images * 255).round().to(torch.uint8).numpy().tobytes())
        h.update(part.labels.numpy().tobytes())
        h.update("\n".join(part.ids).encode())
    return h.hexdigest()
