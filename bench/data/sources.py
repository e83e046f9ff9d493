"""Turn a suite's `data:` section (or `--data`) into train and test image sets."""

from __future__ import annotations

from pathlib import Path

from bench.data.config import DataConfig
from bench.data.dataset import ImageSet
from bench.data.images import load_image_folder, load_manifest
from bench.data.split import split_from_column, stratified_split
from bench.data.synthetic import generate_synthetic_faces
from bench.errors import BenchError


def load_data(cfg: DataConfig, seed: int, base_dir: Path) -> tuple[ImageSet, ImageSet]:
    """Train and test sets: the manifest's split when it has one, else the seeded stratified split."""
    if cfg.source == "synthetic-faces":
        images, labels, ids = generate_synthetic_faces(cfg.n, cfg.size, seed)
        data = ImageSet.from_uint8(images, labels, ids)
        return stratified_split(data, cfg.train_fraction, seed)
    path = Path(cfg.path or "")
    path = path if path.is_absolute() else base_dir / path
    if cfg.source == "csv":
        data, splits = load_manifest(path, cfg.size)
        if splits is not None:
            return split_from_column(data, splits, where=f"{path}: split")
    else:
        data = load_image_folder(path, cfg.size)
    try:
        return stratified_split(data, cfg.train_fraction, seed)
    except BenchError as exc:  # name the user's data, not only the field
        raise BenchError(f"{path}: {exc.where}", exc.message) from None
