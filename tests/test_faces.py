"""Integration on real face images (../shared/data/faces); skipped when the folder is absent.

The images are under non-commercial licences: they are read in place, never copied into the project.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.images import load_image_folder

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"

pytestmark = pytest.mark.skipif(
    not (FACES / "real").is_dir(), reason=f"real face images not found at {FACES} (shared data absent)"
)

SUITE = """\
name: faces
seed: 0
data: {{source: folder, path: {path}, size: 32}}
models:
  tiny: {{arch: tiny, recipe: {{epochs: 3, lr: 0.05}}}}
attacks:
  fgsm: {{attack: fgsm, backend: art, eps: [0.02]}}
  fgsm_fb: {{attack: fgsm, backend: foolbox, eps: 0.02}}
evaluation: {{max_attack_images: 32, gradient_norm_images: 16}}
"""


def test_faces_folder_loads():
    data = load_image_folder(FACES, 32)
    assert len(data) == 1034 and data.n_fake == 517 and data.n_real == 517
    assert data.images.shape[1:] == (3, 32, 32)


def test_suite_runs_on_real_faces(tmp_path: Path):
    suite = tmp_path / "faces.yaml"
    suite.write_text(SUITE.format(path=FACES))
    assert main(["run", str(suite), "--home", str(tmp_path / "home"), "--out", str(tmp_path), "--quiet"]) == 0
    text = (tmp_path / "faces.md").read_text()
    assert "## Table I" in text and "## Table II" in text
    con = sqlite3.connect(tmp_path / "home" / "results.sqlite")
    (metrics,) = con.execute("SELECT metrics FROM cells WHERE kind='clean'").fetchone()
    assert json.loads(metrics)["n"] == 258  # per class: 517 - round(0.75 * 517) = 129
    attacked = con.execute("SELECT COUNT(*) FROM predictions p JOIN cells c USING(cell_id) WHERE c.kind='attack' "
                           "AND c.attack NOT IN ('storage', 'noise', 'noise_l2') AND c.attack_key NOT IN "
                           "('unbounded', 'convergence', 'convergence-stronger')").fetchone()[0]  # the suite's
    # (its attacks are single-step: the not-converged check reruns none of them)
    assert attacked == 2 * 32
