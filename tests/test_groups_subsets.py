"""Group-aware data: manifests with group and subset columns, the split, and per-subset / per-video metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.dataset import ImageSet
from bench.data.images import load_manifest
from bench.data.split import split_from_column, stratified_split
from bench.errors import BenchError
from bench.results.metrics import auroc
from bench.results.subset_metrics import attack_breakdown, auroc_interval, clean_breakdown, video_metrics


def _manifest(tmp_path: Path, n_videos: int = 12, frames: int = 5, extra: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for v in range(n_videos):
        label = "real" if v % 2 else "fake"
        for f in range(frames + v % 3):  # videos of different lengths
            name = f"{label}/v{v:02d}_f{f}.png"
            (tmp_path / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / name)
            rows.append({"file": name, "label": label, "group": f"video{v:02d}", "subset": f"s{v % 4 // 2}",
                         **(extra or {})})
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_manifest_with_groups_splits_without_a_group_on_both_sides(tmp_path: Path):
    data, splits = load_manifest(_manifest(tmp_path), 8)  # `file` is accepted for `path`
    assert splits is None and data.groups is not None and data.subsets is not None
    for seed in range(5):
        train, test = stratified_split(data, 0.75, seed)
        assert not set(train.groups) & set(test.groups)
        assert len(train) + len(test) == len(data)
        for s in ("s0", "s1"):  # every subset and class is on both sides
            for label in (0, 1):
                assert any(g == s and lab == label for g, lab in zip(train.subsets, train.labels.tolist(),
                                                                      strict=True))
                assert any(g == s and lab == label for g, lab in zip(test.subsets, test.labels.tolist(),
                                                                     strict=True))
    a, b = stratified_split(data, 0.75, 3)
    assert a.ids == stratified_split(data, 0.75, 3)[0].ids  # deterministic
    assert 0.55 < len(a) / len(data) < 0.9


def test_split_without_groups_is_unchanged():
    """Data without groups or subsets keeps the original per-class split (stored results stay valid)."""
    imgs = torch.rand(20, 3, 4, 4)
    labels = torch.tensor([0, 1] * 10)
    data = ImageSet(imgs, labels, [str(i) for i in range(20)])
    train, test = stratified_split(data, 0.75, 0)
    rng = np.random.default_rng(0)
    expect = []
    for label in (0, 1):
        idx = np.flatnonzero(labels.numpy() == label)
        expect += list(idx[rng.permutation(len(idx))][:8])
    assert sorted(int(i) for i in train.ids) == sorted(int(i) for i in expect)


def test_too_few_groups_is_a_clear_error(tmp_path: Path):
    data, _ = load_manifest(_manifest(tmp_path, n_videos=4), 8)  # one video per (subset, class)
    with pytest.raises(BenchError, match="too few to split"):
        stratified_split(data, 0.75, 0)


def test_split_column_may_not_cut_a_group(tmp_path: Path):
    data, _ = load_manifest(_manifest(tmp_path), 8)
    splits = ["train" if i % 2 else "test" for i in range(len(data))]
    with pytest.raises(BenchError, match="both train and test"):
        split_from_column(data, splits)


def test_manifest_status_rows_are_skipped(tmp_path: Path):
    path = _manifest(tmp_path, extra={"status": "ok"})
    text = path.read_text().splitlines()
    text.append("missing.png,fake,video00,s0,no_face")
    path.write_text("\n".join(text) + "\n")
    data, _ = load_manifest(path, 8)
    assert "missing.png" not in data.ids


def test_auroc_interval_brackets_the_auroc_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    for n in (40, 400):
        labels = np.repeat([0, 1], n // 2)
        scores = rng.normal(labels * 1.0, 1.0)
        lo, hi = auroc_interval(labels, scores)
        assert lo < auroc(labels, scores) < hi
        width = hi - lo
        if n == 40:
            wide = width
    assert width < wide / 2
    assert all(np.isnan(auroc_interval(np.ones(4), np.ones(4))))  # one class only: no interval


def test_breakdowns_per_subset_and_video():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p_real = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.7, 0.4, 0.8])
    subsets = ["a", "a", "b", "b", "a", "a", "b", "b"]
    groups = ["v1", "v1", "v2", "v2", "v3", "v3", "v4", "v4"]
    m = clean_breakdown(labels, p_real, subsets, groups)
    assert set(m["by_subset"]) == {"a", "b"}
    assert m["by_subset"]["a"]["accuracy"]["value"] == 1.0 and m["by_subset"]["a"]["n"] == 4
    assert m["by_subset"]["b"]["accuracy"]["k"] == 2
    v = m["video"]
    assert v["n_videos"] == 4 and v["accuracy"]["value"] == 1.0 and v["auroc"] == 1.0  # means .15 .45 .8 .6
    assert video_metrics(labels, p_real, [str(i) for i in range(8)]) is None  # one image per group: no videos
    a = attack_breakdown(np.array([True, False, True, True]), ["a", "a", "b", "b"])
    assert a["by_subset"]["a"]["k"] == 1 and a["by_subset"]["b"]["value"] == 1.0
    assert attack_breakdown(np.array([True]), None) == {}


SUITE = """\
name: grouped
seed: 0
data: {{source: csv, path: {path}, size: 16}}
models:
  tiny: {{arch: tiny, label: Tiny, recipe: {{epochs: 2, lr: 0.05}}}}
attacks:
  fgsm: {{attack: fgsm, backend: art, eps: [0.02]}}
evaluation: {{max_attack_images: 16, gradient_norm_images: 8}}
"""


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_run_reports_per_subset_and_per_video(tmp_path: Path, one_thread):
    import json
    import sqlite3

    from bench.cli import main

    manifest = _manifest(tmp_path / "data", n_videos=16)
    suite = tmp_path / "grouped.yaml"
    suite.write_text(SUITE.format(path=manifest))
    out = tmp_path / "board"
    assert main(["run", str(suite), "--home", str(tmp_path / "home"), "--out", str(out), "--quiet"]) == 0
    text = (out / "grouped.md").read_text()
    assert "## Per subset" in text and "### Subset s0: Table I" in text and "### Subset s1: Table II" in text
    assert "## Video level" in text and "AUROC [95% CI]" in text
    assert "Worth attacking on s0" in text or "On s0 every detector is near chance" in text
    con = sqlite3.connect(tmp_path / "home" / "results.sqlite")
    (clean,) = con.execute("SELECT metrics FROM cells WHERE kind='clean'").fetchone()
    clean = json.loads(clean)
    assert sum(m["n"] for m in clean["by_subset"].values()) == clean["n"]
    assert clean["video"]["n_videos"] >= 4 and clean["auroc_lo"] <= clean["auroc"] <= clean["auroc_hi"]
    (attack,) = con.execute("SELECT metrics FROM cells WHERE kind='attack'").fetchone()
    attack = json.loads(attack)
    assert sum(a["n"] for a in attack["by_subset"].values()) == attack["accuracy"]["n"]
