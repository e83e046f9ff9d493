"""User image data: an image folder (`real/`, `fake/`) or a CSV manifest (`path,label[,split,group,subset]`).

Resize rule (documented in the README): an image that is not already `size` x `size` has its
shorter side resized to `size` (bilinear, antialiased) and is then centre-cropped to a square.
Greyscale, palette and RGBA images are converted to RGB (alpha dropped).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.errors import BenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LABEL_NAMES = {"fake": FAKE, "0": FAKE, "real": REAL, "1": REAL}


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as `size` x `size` x 3 uint8, by the resize rule above; a clear error if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BenchError(str(path), f"cannot read image ({exc.__class__.__name__}: {exc})") from exc
    w, h = rgb.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8)


def _class_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(root: Path, size: int) -> ImageSet:
    """`root/real/**` and `root/fake/**` (nested folders allowed), ids are paths relative to `root`."""
    root = Path(root)
    if not root.is_dir():
        raise BenchError(str(root), "data folder does not exist (expected a folder with real/ and fake/)")
    images, labels, ids = [], [], []
    for name, label in (("fake", FAKE), ("real", REAL)):
        folder = root / name
        if not folder.is_dir():
            raise BenchError(str(folder), f"missing class folder {name}/ (expected {root}/real and {root}/fake)")
        files = _class_files(folder)
        if not files:
            raise BenchError(str(folder), f"class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            images.append(load_image(f, size))
            labels.append(label)
            ids.append(f.relative_to(root).as_posix())
    return ImageSet.from_uint8(np.stack(images), np.asarray(labels), ids)


def _optional_column(rows: list[dict], cols: list[str], *names: str) -> list[str] | None:
    """The first of `names` that is a column with at least one non-empty value, as stripped strings."""
    for name in names:
        if name in cols and any(str(r.get(name) or "").strip() for r in rows):
            return [str(r.get(name) or "").strip() for r in rows]
    return None


def load_manifest(csv_path: Path, size: int) -> tuple[ImageSet, list[str] | None]:
    """A CSV with columns `path` (or `file`) and `label`, optionally `split` (train/test), `group` (the source
    video or identity: the split keeps each group on one side) and `subset` (or `source`: Table I and II break
    down per subset). Paths are relative to the CSV's folder. Rows with a `status` other than `ok` (e.g. the
    frames `bench data faces` found no face in) have no image and are skipped."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise BenchError(str(csv_path), "manifest file does not exist")
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        path_col = "path" if "path" in cols else "file"
        if path_col not in cols or "label" not in cols:
            raise BenchError(str(csv_path), f"manifest needs columns path (or file),label[,split,group,subset]; "
                             f"found {cols}")
        rows = [(line, row) for line, row in enumerate(reader, start=2)
                if "status" not in cols or str(row.get("status") or "ok").strip().lower() == "ok"]
    if not rows:
        raise BenchError(str(csv_path), "manifest has no rows" + (" with status ok" if "status" in cols else ""))
    images, labels, ids, splits = [], [], [], []
    for line, row in rows:
        label = LABEL_NAMES.get(str(row["label"]).strip().lower())
        if label is None:
            raise BenchError(f"{csv_path}:{line}", f"label {row['label']!r} is not one of fake, real, 0, 1")
        path = (csv_path.parent / row[path_col]).resolve()
        if not path.is_file():
            raise BenchError(f"{csv_path}:{line}", f"image {row[path_col]!r} does not exist")
        images.append(load_image(path, size))
        labels.append(label)
        ids.append(row[path_col])
        if "split" in cols:
            split = str(row["split"]).strip().lower()
            if split not in ("train", "test"):
                raise BenchError(f"{csv_path}:{line}", f"split {row['split']!r} is not train or test")
            splits.append(split)
    for label, name in ((FAKE, "fake"), (REAL, "real")):
        if label not in labels:
            raise BenchError(str(csv_path), f"manifest has no {name} images")
    plain = [r for _, r in rows]
    groups = _optional_column(plain, cols, "group")
    if groups is not None and "" in groups:
        line = rows[groups.index("")][0]
        raise BenchError(f"{csv_path}:{line}", "empty group: give every row a group, or leave the column out")
    data = ImageSet.from_uint8(np.stack(images), np.asarray(labels), ids,
                               subsets=_optional_column(plain, cols, "subset", "source"), groups=groups)
    return data, (splits if "split" in cols else None)
