"""User data loading (folder and CSV), the resize rule, and the stratified split."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.data.images import load_image, load_image_folder, load_manifest
from bench.data.split import split_from_column, stratified_split
from bench.errors import BenchError


def _write(path: Path, size=(40, 30), mode="RGB", colour=128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode != "RGB" else (colour, 0, 255 - colour)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for i in range(4):  # every image distinct: duplicates are refused
        _write(root / "real" / f"r{i}.png", colour=10 + i)
        _write(root / "fake" / "nested" / f"f{i}.jpg", colour=200 + 10 * i)
    _write(root / "real" / "grey.png", mode="L")
    _write(root / "fake" / "alpha.webp", mode="RGBA")
    (root / "real" / "notes.txt").write_text("ignored")
    return root


def test_folder_loads_nested_and_converts_modes(folder: Path):
    data = load_image_folder(folder, 16)
    assert data.images.shape == (10, 3, 16, 16)
    assert data.images.dtype == torch.float32 and 0 <= data.images.min() and data.images.max() <= 1
    assert data.n_fake == 5 and data.n_real == 5
    assert "fake/nested/f0.jpg" in data.ids and "real/grey.png" in data.ids


def test_resize_rule_shorter_side_then_centre_crop(tmp_path: Path):
    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, 10:30] = 255  # a white centre band exactly as wide as the crop
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", 20)
    assert out.shape == (20, 20, 3)
    assert out.mean() > 250  # the centre crop keeps only the band


def test_missing_or_empty_class_folder_is_an_error(tmp_path: Path):
    with pytest.raises(BenchError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 16)
    _write(tmp_path / "d" / "real" / "a.png")
    (tmp_path / "d" / "fake").mkdir()
    with pytest.raises(BenchError, match=r"fake.*no images"):
        load_image_folder(tmp_path / "d", 16)


def test_unreadable_image_names_the_file(folder: Path):
    (folder / "fake" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BenchError) as err:
        load_image_folder(folder, 16)
    assert "broken.png" in str(err.value) and "cannot read image" in str(err.value)


def test_manifest_with_and_without_split(folder: Path, tmp_path: Path):
    csv = tmp_path / "m.csv"
    rows = ["path,label,split"] + [f"imgs/real/r{i}.png,real,{'test' if i == 0 else 'train'}" for i in range(4)]
    rows += [f"imgs/fake/nested/f{i}.jpg,0,{'test' if i == 0 else 'train'}" for i in range(4)]
    csv.write_text("\n".join(rows) + "\n")
    data, splits = load_manifest(csv, 16)
    assert splits is not None and len(data) == 8
    train, test = split_from_column(data, splits)
    assert len(test) == 2 and test.n_fake == 1 and test.n_real == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nimgs/real/r0.png,maybe\n")
    with pytest.raises(BenchError, match=r"bad.csv:2.*maybe"):
        load_manifest(bad, 16)


def _toy(n_fake: int, n_real: int) -> ImageSet:
    n = n_fake + n_real
    labels = np.array([FAKE] * n_fake + [REAL] * n_real)
    return ImageSet(torch.rand(n, 3, 4, 4), torch.as_tensor(labels), [f"i{k}" for k in range(n)])


def test_stratified_split_is_deterministic_and_stratified():
    data = _toy(40, 60)
    train, test = stratified_split(data, 0.75, seed=3)
    assert (train.n_fake, train.n_real, test.n_fake, test.n_real) == (30, 45, 10, 15)
    assert not set(train.ids) & set(test.ids)
    again = stratified_split(data, 0.75, seed=3)[1]
    assert again.ids == test.ids
    other = stratified_split(data, 0.75, seed=4)[1]
    assert other.ids != test.ids
