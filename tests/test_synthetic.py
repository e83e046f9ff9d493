"""The embedded `synthetic-faces` dataset: format, determinism, no global-statistics shortcut, learnability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvision.transforms import functional as TF

from bench import FAKE, REAL
from bench.data.dataset import ImageSet
from bench.data.image_stats import STAT_NAMES, global_image_stats
from bench.data.synthetic import generate_synthetic_faces, write_image_folder
from bench.errors import BenchError
from bench.models import create_model
from bench.models.training import Recipe, train_detector


def test_format_ids_and_balance() -> None:
    images, labels, ids = generate_synthetic_faces(10, size=24, seed=3)
    assert images.shape == (10, 24, 24, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) == {FAKE, REAL}
    assert ids == [f"synth-{i:06d}" for i in range(10)]
    assert (labels == REAL).sum() == 5
    _, labels, _ = generate_synthetic_faces(200, size=24, seed=0)
    assert (labels == REAL).sum() == 100
    # interleaved: every pair holds one of each, and neither half is a single class
    assert np.all(labels[0::2] + labels[1::2] == 1)
    assert 30 < (labels[:100] == REAL).sum() < 70
    assert images.std() > 20  # not blank


def test_deterministic_and_prefix_stable() -> None:
    a, la, ia = generate_synthetic_faces(6, size=32, seed=7)
    b, lb, ib = generate_synthetic_faces(11, size=32, seed=7)
    np.testing.assert_array_equal(a, b[:6])
    np.testing.assert_array_equal(la, lb[:6])
    assert ia == ib[:6]
    c, _, _ = generate_synthetic_faces(6, size=32, seed=7)
    np.testing.assert_array_equal(a, c)
    d, _, _ = generate_synthetic_faces(6, size=32, seed=8)
    assert not np.array_equal(a, d)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(BenchError, match="size"):
        generate_synthetic_faces(4, size=16)
    with pytest.raises(BenchError, match="non-negative"):
        generate_synthetic_faces(-1)
    images, labels, ids = generate_synthetic_faces(0, size=32)
    assert images.shape == (0, 32, 32, 3) and len(labels) == 0 and ids == []


def test_global_stats_helper() -> None:
    images, _, _ = generate_synthetic_faces(4, size=32, seed=0)
    stats = global_image_stats(images)
    assert stats.shape == (4, len(STAT_NAMES)) == (4, 10)
    flat = np.full((1, 32, 32, 3), 128, np.uint8)
    s = global_image_stats(flat)[0]
    assert s[STAT_NAMES.index("laplacian_var")] == 0 and s[STAT_NAMES.index("hf_energy")] == 0
    blurred = TF.gaussian_blur(torch.from_numpy(images).permute(0, 3, 1, 2).float(), [7, 7], [1.5, 1.5])
    soft = global_image_stats(blurred.permute(0, 2, 3, 1).numpy() / 255.0)
    k = STAT_NAMES.index("laplacian_var")
    assert np.all(soft[:, k] < stats[:, k])


@pytest.mark.parametrize("size", [64, 32])
def test_global_statistics_do_not_separate_the_classes(size: int) -> None:
    """Requirement: a logistic regression on ten global statistics scores AUROC <= 0.70 (5-fold CV)."""
    images, labels, _ = generate_synthetic_faces(1000, size=size, seed=0)
    feats = global_image_stats(images)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    auroc = cross_val_score(clf, feats, labels, cv=cv, scoring="roc_auc").mean()
    assert 0.3 < auroc <= 0.70, f"global statistics separate real from fake (AUROC {auroc:.3f})"


@pytest.fixture(scope="module")
def trained_tiny() -> tuple[torch.nn.Module, ImageSet]:
    images, labels, ids = generate_synthetic_faces(1200, size=32, seed=0)
    data = ImageSet.from_uint8(images, labels, ids)
    train, test = data.subset(range(1000)), data.subset(range(1000, 1200))
    model = create_model("tiny", input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    recipe = Recipe(epochs=16, lr=0.05, batch_size=32, step_size=12, gamma=0.2)
    train_detector(model, train, recipe, seed=0, quiet=True)
    return model, test


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.predict_proba(x).argmax(1) == y).float().mean())


@pytest.mark.slow
def test_tiny_cnn_learns_the_swap_cue(trained_tiny) -> None:
    model, test = trained_tiny
    acc = _accuracy(model, test.images, test.labels)
    assert acc >= 0.90, f"tiny CNN test accuracy {acc:.3f}"


@pytest.mark.slow
def test_swap_cue_survives_gaussian_blur(trained_tiny) -> None:
    """A detector trained on clean images still detects fakes after a Gaussian blur of sigma 1 px:
    the cue is not only high-frequency, so blur-based purification leaves clean accuracy meaningful."""
    model, test = trained_tiny
    blurred = TF.gaussian_blur(test.images, kernel_size=[7, 7], sigma=[1.0, 1.0])
    acc = _accuracy(model, blurred, test.labels)
    assert acc >= 0.85, f"accuracy on blurred test images {acc:.3f}"


def test_write_image_folder(tmp_path) -> None:
    out = tmp_path / "synth"
    count = write_image_folder(out, n=6, size=32, seed=1)
    assert count == 6
    real = sorted(p.name for p in (out / "real").iterdir())
    fake = sorted(p.name for p in (out / "fake").iterdir())
    assert len(real) == 3 and len(fake) == 3
    images, labels, ids = generate_synthetic_faces(6, size=32, seed=1)
    first = ids.index(real[0].removesuffix(".png"))
    assert labels[first] == REAL
    np.testing.assert_array_equal(np.asarray(Image.open(out / "real" / real[0])), images[first])
    with pytest.raises(BenchError, match="not empty"):
        write_image_folder(out, n=2, size=32, seed=1)
