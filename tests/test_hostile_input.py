"""Issue 15, one test per class of hostile input: each ends in exit 2 with a message naming the file and field,
before anything is written (or, where the fault can only show while running, with nothing broken stored)."""

from __future__ import annotations

import sqlite3
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.cli import main
from bench.models import create_model

GOOD = """\
name: t
data: {source: synthetic-faces, n: 40, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 1}}
attacks:
  f: {attack: fgsm, backend: art, eps: [0.02]}
evaluation: {max_attack_images: 8, attack_batch_size: 8, gradient_norm_images: 8}
"""


def images(root: Path, n: int = 4, size: int = 32) -> Path:
    """`root/real`, `root/fake`, every image distinct."""
    for c, cls in enumerate(("real", "fake")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size), (20 * i, 120 * c, 7)).save(root / cls / f"{i}.png")
    return root


def png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that declares w x h pixels (a decompression bomb's header) with almost no data."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def scripted(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module).save(str(path))
    return path


class NoParameters(nn.Module):
    """A TorchScript detector without parameters: two logits from the mean colour."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(2, 3))
        return torch.stack([m[:, 0] - m[:, 1], m[:, 1] - m[:, 0]], dim=1)


def refused(tmp_path: Path, capsys, command: str, text: str | bytes, expected: str, extra: tuple = ()) -> str:
    """Run `bench COMMAND suite` on `text`: exit 2, `expected` in the one-line error, home and out untouched."""
    suite = tmp_path / "suite.yaml"
    suite.write_bytes(text if isinstance(text, bytes) else text.encode())
    home, out = tmp_path / "home", tmp_path / "lb"
    args = [command, str(suite), *extra]
    if command == "run":
        args += ["--home", str(home), "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: "), err
    assert expected in err, err
    assert len(err) < 2200, "messages never print unbounded data"
    assert not home.exists() and not out.exists(), "nothing may be written on bad input"
    return err


# --------------------------------------------------------------------------------------------- the classes
TRACEBACK_CASES = {  # formerly a Python traceback with exit 1
    "negative-seed": (GOOD + "seed: -1\n", "seed: must be >= 0"),
    "seed-beyond-int64": (GOOD + "seed: 99999999999999999999\n", "seed: must be <= 4294967295"),
    "init-from-itself": (GOOD.replace("recipe: {epochs: 1}", "init_from: a"), "models.a.init_from: init_from makes a"
                         " cycle (a -> a)"),
    "init-from-cycle": (GOOD.replace("recipe: {epochs: 1}}", "init_from: b}\n  b: {arch: tiny, init_from: a}"),
                        "init_from makes a cycle"),
    "profile-is-a-list": (GOOD + "profiles: {quick: [1, 2]}\n", "profiles.quick: a profile is a mapping"),
    "profile-is-a-number": (GOOD + "profiles: {quick: 3}\n", "profiles.quick: a profile is a mapping"),
    "suite-not-utf8": (GOOD.encode() + b"description: caf\xe9\n", "suite.yaml:8: not UTF-8"),
    "profiles-not-a-mapping": (GOOD + "profiles: [quick]\n", "profiles: expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(TRACEBACK_CASES))
def test_former_tracebacks_exit_2_naming_the_field(case, tmp_path, capsys):
    text, expected = TRACEBACK_CASES[case]
    refused(tmp_path, capsys, "validate", text, expected)
    refused(tmp_path, capsys, "run", text, expected)


def test_former_tracebacks_in_files_exit_2_naming_the_file(tmp_path, capsys):
    """Images and checkpoints that used to raise: a decompression bomb, a .ts or .safetensors that is not one."""
    data = images(tmp_path / "bomb")
    png_header_only(data / "fake" / "huge.png", 20000, 20000)
    refused(tmp_path, capsys, "run", GOOD, "huge.png: image", ("--data", str(data)))
    (tmp_path / "junk.ts").write_bytes(b"not a zip archive")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0garbage")
    for name, expected in (("junk.ts", "not a TorchScript archive"),
                           ("junk.safetensors", "not a readable safetensors")):
        refused(tmp_path, capsys, "run", GOOD.replace("arch: tiny,", f"arch: tiny, checkpoint: {name},"),
                f"{name}: {expected}")


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_torchscript_without_parameters_runs(tmp_path, capsys):
    scripted(NoParameters(), tmp_path / "plain.ts")
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD.replace("arch: tiny,", "arch: tiny, checkpoint: plain.ts,"))
    assert main(["run", str(suite), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet"]) == 0
    assert (tmp_path / "lb" / "t.md").is_file()


VALID_THEN_FAILED = {  # formerly valid for `bench validate`, then failing mid-run after writing files
    "infinite-lr": (GOOD.replace("epochs: 1", "epochs: 1, lr: .inf"), "models.a.recipe.lr: must be a finite number"),
    "vgg-too-small": (GOOD.replace("arch: tiny", "arch: vgg16_bn").replace("size: 32", "size: 16"),
                      "vgg16_bn needs images of at least 32 px"),
    "csv-every-row-twice": (GOOD, "is listed twice (also on line 2)"),
    "csv-split-without-test-fakes": (GOOD, "leaves no fake images in test"),
}


@pytest.mark.parametrize("case", sorted(VALID_THEN_FAILED))
def test_formerly_valid_then_failing_is_refused_by_validate(case, tmp_path, capsys):
    text, expected = VALID_THEN_FAILED[case]
    extra: tuple = ()
    if case.startswith("csv"):
        images(tmp_path / "img")
        rows = [f"img/{c}/{i}.png,{c}" for c in ("real", "fake") for i in range(4)]
        if case == "csv-every-row-twice":
            body = "path,label\n" + "\n".join(rows + rows)
        else:
            body = "path,label,split\n" + "\n".join(
                f"{r},{'train' if 'fake' in r or r.endswith('0.png,real') else 'test'}" for r in rows)
        (tmp_path / "m.csv").write_text(body + "\n")
        extra = ("--data", str(tmp_path / "m.csv"))
    refused(tmp_path, capsys, "validate", text, expected, extra)
    refused(tmp_path, capsys, "run", text, expected, extra)


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_non_finite_training_stops_naming_the_model_and_stores_nothing_non_finite(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD.replace("epochs: 1", "epochs: 1, lr: 1.0e+30"))
    home = tmp_path / "home"
    assert main(["validate", str(suite)]) == 0  # a finite learning rate: only training can tell
    assert main(["run", str(suite), "--home", str(home), "--out", str(tmp_path / "lb"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: models.a: training loss became" in err and "lower recipe.lr" in err, err
    assert not list((home / "checkpoints").glob("*.safetensors")) if (home / "checkpoints").exists() else True
    con = sqlite3.connect(home / "results.sqlite")
    assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    assert con.execute("SELECT COUNT(*) FROM cells").fetchone() == (0,)
    assert not (tmp_path / "lb").exists()


SILENT = {  # formerly accepted silently
    "duplicate-keys": (GOOD + "attacks:\n  g: {attack: fgsm, backend: art, eps: 0.1}\n",
                       "suite.yaml:8:1: duplicate key 'attacks' (first given on line 5)"),
    "boolean-eps": (GOOD.replace("eps: [0.02]", "eps: true"), "attacks.f.eps: expected a number, got true"),
    "infinite-pgd-eps": (GOOD.replace("attack: fgsm, backend: art, eps: [0.02]",
                                      "attack: pgd, backend: art, eps: .inf, steps: 1, step_size: 0.01"),
                         "attacks.f.eps: must be a finite number"),
    "table-point-outside-grid": (GOOD.replace("eps: [0.02]", "eps: [0.02], table: {eps: 0.5}"),
                                 "attacks.f.table.eps: 0.5 is not a point of the grid"),
    "unselected-profile": (GOOD + "profiles: {full: {seed: -3}}\n", "(profile full): seed: must be >= 0"),
    "boolean-count": (GOOD.replace("n: 40", "n: true"), "data.n: expected an integer, got true"),
    "string-number": (GOOD.replace("epochs: 1", "epochs: '3'"), "expected an integer, got '3' (a string)"),
}


@pytest.mark.parametrize("case", sorted(SILENT))
def test_formerly_silent_suite_errors_are_refused(case, tmp_path, capsys):
    text, expected = SILENT[case]
    refused(tmp_path, capsys, "validate", text, expected)
    refused(tmp_path, capsys, "run", text, expected)


def _silent_data(root: Path, case: str) -> Path:
    data = images(root / "img")
    if case == "one-image-in-both-classes":
        (data / "fake" / "same.png").symlink_to(data / "real" / "1.png")
    elif case == "dangling-link":
        (data / "real" / "gone.png").symlink_to(root / "nowhere.png")
    elif case == "link-loop":
        (data / "real" / "x.png").symlink_to(data / "real" / "y.png")
        (data / "real" / "y.png").symlink_to(data / "real" / "x.png")
    elif case == "folder-link-loop":
        (data / "real" / "again").symlink_to(data)
    elif case == "duplicate-content":
        (data / "fake" / "copy.png").write_bytes((data / "fake" / "2.png").read_bytes())
    elif case == "float-image":  # float pixels (a TIFF under a .png name: Pillow reads the content)
        Image.fromarray(np.full((32, 32), 3.5, np.float32)).save(data / "real" / "deep.png", format="TIFF")
    return data


SILENT_DATA = {
    "one-image-in-both-classes": "is in both classes",
    "dangling-link": "gone.png: dangling symbolic link",
    "link-loop": "symbolic link loop",
    "folder-link-loop": "again: symbolic link loop",
    "duplicate-content": "is a duplicate of",
    "float-image": "deep.png: image mode F",
}


@pytest.mark.parametrize("case", sorted(SILENT_DATA))
def test_formerly_silent_data_errors_are_refused(case, tmp_path, capsys):
    data = _silent_data(tmp_path, case)
    refused(tmp_path, capsys, "validate", GOOD, SILENT_DATA[case], ("--data", str(data)))
    refused(tmp_path, capsys, "run", GOOD, SILENT_DATA[case], ("--data", str(data)))


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    from bench.data.images import load_image

    grey = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = load_image(tmp_path / "g16.png", 32)
    expected = np.round(grey / 257.0).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert (rgb == 255).mean() < 0.01  # formerly 97% white


def test_formerly_silent_detectors_are_refused(tmp_path, capsys):
    """A TorchScript detector with 3 outputs, or of another architecture than the suite's `arch`."""
    net = create_model("tiny", 32).net
    scripted(nn.Sequential(*list(net.children())[:-1], nn.Linear(64, 3)), tmp_path / "three.ts")
    scripted(create_model("resnet18", 32).net, tmp_path / "resnet.ts")

    class ThreeLogits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    scripted(ThreeLogits(), tmp_path / "three_plain.ts")
    not_tiny = "the TorchScript network is not a tiny (the suite's arch)"
    for name, expected in (("three.ts", not_tiny), ("resnet.ts", not_tiny),
                           ("three_plain.ts", "the network returns (2, 3) on a batch of 2 images")):
        refused(tmp_path, capsys, "run", GOOD.replace("arch: tiny,", f"arch: tiny, checkpoint: {name},"),
                f"{name}: {expected}")


def test_resource_exhaustion_is_refused_quickly(tmp_path, capsys):
    """An alias bomb under a defense's params, a huge suite, a huge description: refused, messages bounded."""
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = GOOD + "\n".join("x" + line for line in bomb) + "\n" + (
        "defenses:\n  j: {use: jpeg, applies_to: [a], params: {quality: *a8}}\n")
    assert len(text) < 2048
    refused(tmp_path, capsys, "validate", text, "expands to more than 100,000 nodes")
    refused(tmp_path, capsys, "validate", GOOD + "description: |\n" + "  word\n" * 400_000, "limit is 1,048,576")
    refused(tmp_path, capsys, "validate", GOOD + "description: " + "w" * 900_000 + "\n",
            "description: is too long (at most 4000 characters)")
    refused(tmp_path, capsys, "validate", GOOD + "recursive: &r [*r]\n", "suite.yaml")
