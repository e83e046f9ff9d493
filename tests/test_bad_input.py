"""Bad input: exit status 2, a message naming the file and field, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.models import create_model

GOOD = """\
name: t
data: {source: synthetic-faces, n: 40, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 1}}
attacks:
  f: {attack: fgsm, backend: art, eps: [0.02]}
"""


class Evil:
    """Unpickling this runs code: the loader must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _images(root: Path, n: int = 3) -> Path:
    for c, cls in enumerate(("real", "fake")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):  # every image distinct: duplicates are refused
            Image.new("RGB", (32, 32), (i * 40, 100 * c, 0)).save(root / cls / f"{i}.png")
    return root


def _suite(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


CASES = {
    "malformed-yaml": (lambda t: GOOD.replace("models:", "models: [", 1), [], "malformed YAML"),
    "unknown-model": (lambda t: GOOD.replace("arch: tiny", "arch: alexnet"), [], "models.a.arch: unknown model"),
    "unknown-attack": (lambda t: GOOD.replace("attack: fgsm", "attack: deepfool"), [],
                       "attacks.f.attack: unknown attack"),
    "unknown-backend": (lambda t: GOOD.replace("backend: art", "backend: cleverhans"), [],
                        "attacks.f.backend: attack 'fgsm' has no backend 'cleverhans'"),
    "negative-epsilon": (lambda t: GOOD.replace("[0.02]", "[-0.02]"), [], "attacks.f.eps: must be >= 0"),
    "empty-grid": (lambda t: GOOD.replace("[0.02]", "[]"), [], "attacks.f.eps: empty grid"),
    "negative-kappa": (lambda t: GOOD + "  cw: {attack: cw_l2, confidence: -1}\n", [],
                       "attacks.cw.confidence: must be >= 0"),
    "missing-data-folder": (lambda t: GOOD, ["--data", "{tmp}/nowhere"], "nowhere"),
    "empty-class-folder": (lambda t: GOOD, ["--data", "{tmp}/empty"], "no images"),
    "unreadable-image": (lambda t: GOOD, ["--data", "{tmp}/broken"], "broken.png: cannot read image"),
    "checkpoint-other-arch": (lambda t: GOOD.replace("arch: tiny,", "arch: tiny, checkpoint: resnet.pt,"), [],
                              "resnet.pt: not a checkpoint for architecture 'tiny'"),
    "pickled-code": (lambda t: GOOD.replace("arch: tiny,", "arch: tiny, checkpoint: evil.pt,"), [],
                     "evil.pt: refusing to load"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_bad_input_is_refused_cleanly(case: str, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, extra, expected = CASES[case]
    _images(tmp_path / "empty", 2)
    for f in (tmp_path / "empty" / "fake").iterdir():
        f.unlink()
    broken = _images(tmp_path / "broken", 2)
    (broken / "fake" / "broken.png").write_bytes(b"\x89PNG garbage")
    torch.save(create_model("resnet18", 32).net.state_dict(), tmp_path / "resnet.pt")
    torch.save({"weight": torch.zeros(1), "payload": Evil()}, tmp_path / "evil.pt")
    suite = _suite(tmp_path, make(tmp_path))
    home, out = tmp_path / "home", tmp_path / "lb"
    args = ["run", str(suite), "--home", str(home), "--out", str(out), "--quiet"]
    args += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "error:" in err
    assert not home.exists() and not out.exists(), "nothing may be written on bad input"
    assert not (tmp_path / "PWNED").exists()


def test_validate_reports_valid_suite(tmp_path: Path, capsys):
    assert main(["validate", str(_suite(tmp_path, GOOD))]) == 0
    assert "valid" in capsys.readouterr().out


def test_unknown_profile(tmp_path: Path, capsys):
    assert main(["validate", str(_suite(tmp_path, GOOD)), "--profile", "fast"]) == 2
    assert "unknown profile 'fast'" in capsys.readouterr().err
