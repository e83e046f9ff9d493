"""User image data: an image folder (`real/`, `fake/`) or a CSV manifest (`path,label[,split,group,subset]`).

Resize rule (documented in the README): an image that is not already `size` x `size` has its
shorter side resized to `size` (bilinear, antialiased) and is then centre-cropped to a square.
Greyscale, palette and RGBA images are converted to RGB (alpha dropped).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.errors import BenchError, utf8_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LABEL_NAMES = {"fake": FAKE, "0": FAKE, "real": REAL, "1": REAL}


MAX_PIXELS = 64_000_000  # an image larger than this (e.g. 8000 x 8000) is refused: a decompression bomb
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_CONVERTIBLE = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "La")


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """RGB, 8 bits per channel. 16-bit greyscale is scaled (65535 -> 255), not clipped; 32-bit and float refused."""
    if im.mode in _SIXTEEN_BIT:
        grey = np.asarray(im, dtype=np.uint16).astype(np.float64)
        return Image.fromarray(np.round(grey / 257.0).astype(np.uint8), mode="L").convert("RGB")
    if im.mode not in _CONVERTIBLE:
        raise BenchError(str(path), f"image mode {im.mode} ({'32-bit integer' if im.mode == 'I' else 'float'} "
                         "pixels) cannot be represented in 8 bits faithfully; save it as 8- or 16-bit")
    return im.convert("RGB")


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as `size` x `size` x 3 uint8, by the resize rule above; a clear error if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BenchError(str(path), f"image is {w} x {h} pixels, more than the limit of "
                                     f"{MAX_PIXELS:,} (a decompression bomb?)")
                im.load()
                rgb = _to_rgb(im, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # PIL's own limit, before ours
        raise BenchError(str(path), f"image is more than the limit of {MAX_PIXELS:,} pixels (a decompression "
                                    "bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BenchError(str(path), f"cannot read image ({exc.__class__.__name__}: {exc})") from None
    w, h = rgb.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8)


def _walk(folder: Path, ancestors: frozenset[Path]) -> list[Path]:
    """Image files under `folder`, following links; a dangling link or a link loop is an error naming it."""
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise BenchError(str(folder), f"cannot list the folder ({exc.strerror or exc})") from None
    for entry in entries:
        p = Path(entry.path)
        if entry.is_symlink():
            try:
                p.resolve(strict=True)
            except FileNotFoundError:
                raise BenchError(str(p), "dangling symbolic link: its target does not exist") from None
            except (RuntimeError, OSError):
                raise BenchError(str(p), "symbolic link loop: the link never reaches a file") from None
        if p.is_dir():
            real = p.resolve()
            if real in ancestors:
                raise BenchError(str(p), f"symbolic link loop: it leads back to {real}")
            found += _walk(p, ancestors | {real})
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
    return found


def _class_files(folder: Path) -> list[Path]:
    real = folder.resolve()
    return _walk(folder, frozenset({real, *real.parents}))


def _content_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise BenchError(str(path), f"cannot read image ({exc.strerror or exc})") from None


def refuse_duplicates(files: list[tuple[Path, str, int]]) -> None:
    """`(file, where, label)` triples: the same file (or the same bytes) twice is an error naming both.

    One image in both classes contradicts itself; one image twice in a class is counted twice and can land in
    both train and test.
    """
    seen: dict[str, tuple[str, int]] = {}
    for path, where, label in files:
        digest = _content_digest(path)
        if digest in seen:
            first, first_label = seen[digest]
            what = "is in both classes: also" if first_label != label else "is a duplicate of"
            raise BenchError(where, f"image {path.name} {what} {first} (same content); each image once, please")
        seen[digest] = (where, label)


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
    refuse_duplicates([(root / i, str(root / i), lab) for i, lab in zip(ids, labels, strict=True)])
    return ImageSet.from_uint8(np.stack(images), np.asarray(labels), ids)


def _read_manifest_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The manifest's columns and (line, row) pairs; non-UTF-8 text and malformed CSV name the line."""
    text = utf8_text(csv_path.read_bytes(), csv_path, "manifest")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        cols = reader.fieldnames or []
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise BenchError(f"{csv_path}:{reader.line_num}", f"malformed CSV ({exc})") from None
    return list(cols), rows


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
    cols, all_rows = _read_manifest_rows(csv_path)
    path_col = "path" if "path" in cols else "file"
    if path_col not in cols or "label" not in cols:
        raise BenchError(str(csv_path), "manifest needs columns path (or file),label[,split,group,subset]; "
                         f"found {str(cols)[:200]}")
    rows = [(line, row) for line, row in all_rows  # rows a face extraction marked (no face found) are left out
            if "status" not in cols or str(row.get("status") or "ok").strip().lower() == "ok"]
    if not rows:
        raise BenchError(str(csv_path), "manifest has no rows" + (" with status ok" if "status" in cols else ""))
    images, labels, ids, splits = [], [], [], []
    seen_paths: dict[Path, int] = {}
    files: list[tuple[Path, str, int]] = []
    for line, row in rows:
        where = f"{csv_path}:{line}"
        if row.get(path_col) is None or row.get("label") is None:
            raise BenchError(where, "row has fewer fields than the header (path,label[,split,group,subset])")
        label = LABEL_NAMES.get(str(row["label"]).strip().lower())
        if label is None:
            raise BenchError(where, f"label {str(row['label'])[:80]!r} is not one of fake, real, 0, 1")
        if "\x00" in row[path_col] or not row[path_col].strip():
            raise BenchError(where, f"path {str(row[path_col])[:200]!r} is empty or holds a NUL character")
        try:
            path = (csv_path.parent / row[path_col]).resolve()
            exists = path.is_file()
        except (OSError, RuntimeError) as exc:  # a link loop, a name too long
            raise BenchError(where, f"image {str(row[path_col])[:200]!r} cannot be opened ({exc})") from None
        if not exists:
            raise BenchError(where, f"image {str(row[path_col])[:200]!r} does not exist")
        if path in seen_paths:
            raise BenchError(where, f"image {str(row[path_col])[:200]!r} is listed twice (also on line "
                             f"{seen_paths[path]})")
        seen_paths[path] = line
        files.append((path, where, label))
        try:
            images.append(load_image(path, size))
        except BenchError as exc:
            raise BenchError(f"{where}: {exc.where}", exc.message) from None
        labels.append(label)
        ids.append(row[path_col])
        if "split" in cols:
            split = str(row["split"]).strip().lower()
            if split not in ("train", "test"):
                raise BenchError(where, f"split {str(row['split'])[:80]!r} is not train or test")
            splits.append(split)
    for label, name in ((FAKE, "fake"), (REAL, "real")):
        if label not in labels:
            raise BenchError(str(csv_path), f"manifest has no {name} images")
    refuse_duplicates(files)
    plain = [r for _, r in rows]
    groups = _optional_column(plain, cols, "group")
    if groups is not None and "" in groups:
        line = rows[groups.index("")][0]
        raise BenchError(f"{csv_path}:{line}", "empty group: give every row a group, or leave the column out")
    data = ImageSet.from_uint8(np.stack(images), np.asarray(labels), ids,
                               subsets=_optional_column(plain, cols, "subset", "source"), groups=groups)
    return data, (splits if "split" in cols else None)
