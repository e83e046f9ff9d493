"""Property-based fuzzing (hypothesis) of issue 15's classes: malformed suites and data folders.

Every example runs `bench validate` in-process (nothing is trained) and must end in exit 0, or in exit 2 with
one line `error: <file>...: <message>` naming the file, never a traceback, and with nothing written.
400 suites + 200 data folders per run; each example is cheap (a YAML file, a few 32 px images).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.cli import main

BASE: dict[str, Any] = {
    "name": "fz",
    "seed": 3,
    "description": "fuzzing",
    "data": {"source": "synthetic-faces", "n": 40, "size": 32, "train_fraction": 0.75},
    "models": {
        "a": {"arch": "tiny", "label": "A", "recipe": {"epochs": 1, "lr": 0.01, "batch_size": 8, "momentum": 0.9}},
        "b": {"arch": "tiny", "init_from": "a", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "c": {"arch": "tiny", "defense": {"lipschitz": {"lambda": [5, 50]}}},
    },
    "defenses": {"j": {"use": "jpeg", "params": {"quality": 75}, "applies_to": ["a"]}},
    "attacks": {
        "f": {"attack": "fgsm", "backend": "art", "eps": [0.01, 0.02], "table": {"eps": 0.02}},
        "p": {"attack": "pgd", "backend": "native", "eps": 0.03, "norm": "linf", "steps": 2, "step_size": 0.01,
              "random_start": False},
        "cw": {"attack": "cw_l2", "backend": "foolbox", "confidence": 0.0, "c_min": 1.0, "c_max": 10.0,
               "binary_search_steps": 1, "max_iterations": 2, "learning_rate": 0.01, "abort_early": True},
    },
    "threat_models": {"white_box": True, "transfer": [["a", "b"]]},
    "evaluation": {"max_attack_images": 8, "attack_batch_size": 8, "storage": "png", "jpeg_quality": 95,
                   "gradient_norm_images": 8},
    "profiles": {"quick": {"data": {"n": 20}}},
}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    return out


PATHS = _paths(BASE) + [("models", "a", "checkpoint"), ("attacks", "f", "table", "eps"), ("crosscheck",),
                        ("profiles", "quick"), ("profiles", "full"), ("dip",), ("models", "a", "defense"),
                        ("models", "z"), ("attacks", "new"), ("report", "leaderboard_dir"), ("unknown",)]

NAMES = ["", "a", "b", "c", "z", "tiny", "vgg16_bn", "resnet18", "builtins:print", "os:system", "nope.py:X",
         ":X", "a:b:c", "../../x.py:Y", "fgsm", "pgd", "real", "fake", "x" * 3000]
HOSTILE = st.one_of(
    st.booleans(), st.none(),
    st.integers(-(2**70), 2**70), st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 2),
    st.text(max_size=20), st.sampled_from(NAMES),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-1, 2), st.sampled_from(NAMES[:8])), max_size=4),
    st.dictionaries(st.sampled_from(["eps", "lambda", "quality", "n", "x", "attack", "arch"]),
                    st.one_of(st.integers(-2, 100), st.floats(-1, 2), st.booleans(), st.text(max_size=4)),
                    max_size=3),
)


def _set(doc: dict, path: tuple, value: Any) -> None:
    node = doc
    for k in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(k, {})
    if isinstance(node, dict):
        node[path[-1]] = value


def _delete(doc: dict, path: tuple) -> None:
    node = doc
    for k in path[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


SEMANTIC = {  # the issue's examples, as mutations of the valid base
    "init-self": lambda d: _set(d, ("models", "a", "init_from"), "a"),
    "init-cycle": lambda d: _set(d, ("models", "a", "init_from"), "b"),
    "init-grid": lambda d: _set(d, ("models", "b", "init_from"), "c"),
    "vgg-small": lambda d: (_set(d, ("models", "a", "arch"), "vgg16_bn"), _set(d, ("data", "size"), 16)),
    "table-outside": lambda d: _set(d, ("attacks", "f", "table"), {"eps": 0.5}),
    "table-bool": lambda d: _set(d, ("attacks", "f", "table"), {"eps": True}),
    "profile-list": lambda d: _set(d, ("profiles", "quick"), [1, 2]),
    "profile-number": lambda d: _set(d, ("profiles", "quick"), 7),
    "profile-bad-seed": lambda d: _set(d, ("profiles", "full"), {"seed": -1}),
    "profile-bad-model": lambda d: _set(d, ("profiles", "full"), {"models": {"a": {"arch": "alexnet"}}}),
    "seed-huge": lambda d: _set(d, ("seed",), 2**63),
    "crosscheck-print": lambda d: _set(d, ("crosscheck",), [{"attack": "fgsm", "model": "a",
                                                             "implementations": ["native", "builtins:print"]}]),
    "plugin-missing": lambda d: _set(d, ("defenses", "m"), {"use": "absent.py:Mine", "applies_to": ["a"]}),
    "transfer-unknown": lambda d: _set(d, ("threat_models", "transfer"), [["a", "nobody"]]),
    "lr-inf": lambda d: _set(d, ("models", "a", "recipe", "lr"), float("inf")),
    "eps-true": lambda d: _set(d, ("attacks", "p", "eps"), True),
    "empty-grid": lambda d: _set(d, ("attacks", "f", "eps"), []),
}


def _bomb(depth: int) -> str:
    lines = ["xa0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"xa{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, depth + 1)]
    return "\n".join(lines) + f"\ndefenses:\n  j: {{use: jpeg, applies_to: [a], params: {{quality: *a{depth}}}}}\n"


@st.composite
def suites(draw) -> bytes:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "set", "delete", "semantic", "semantic"]))
        if op == "set":
            _set(doc, draw(st.sampled_from(PATHS)), draw(HOSTILE))
        elif op == "delete":
            _delete(doc, draw(st.sampled_from(PATHS)))
        else:
            SEMANTIC[draw(st.sampled_from(sorted(SEMANTIC)))](doc)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")
    textual = draw(st.sampled_from(["none", "none", "duplicate", "bomb", "latin1", "truncate", "bytes", "tabs"]))
    if textual == "duplicate":
        key = draw(st.sampled_from(list(BASE)))
        text += f"{key}: {{}}\n".encode()
    elif textual == "bomb":
        text = text.replace(b"defenses:", b"old_defenses:") + _bomb(draw(st.integers(3, 8))).encode()
    elif textual == "latin1":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + b"\xe9\xff" + text[at:]
    elif textual == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif textual == "bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=12)) + text[at:]
    elif textual == "tabs":
        text = text.replace(b"  ", b"\t", draw(st.integers(1, 3)))
    return text


def _png_header(path: Path, w: int, h: int) -> None:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


DATA_FAULTS = ["none", "dangling", "loop", "dir-loop", "duplicate", "both-classes", "bomb", "sixteen-bit", "float",
               "garbage", "empty-class", "no-class", "csv-dup", "csv-latin1", "csv-columns", "csv-label", "csv-split",
               "csv-split-no-fakes", "csv-missing", "csv-short-row", "csv-nul", "tiny-class"]


@st.composite
def data_folders(draw) -> tuple[list[str], int]:
    """A list of faults (applied by `_build_data`) and the number of images per class."""
    faults = draw(st.lists(st.sampled_from(DATA_FAULTS), min_size=1, max_size=2, unique=True))
    last = ("tiny-class", "empty-class", "no-class")  # faults that remove files go after those that use them
    return sorted(faults, key=lambda f: last.index(f) if f in last else -1), draw(st.integers(2, 4))


def _build_data(root: Path, faults: list[str], n: int) -> Path:
    data = root / "img"
    for c, cls in enumerate(("real", "fake")):
        (data / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (32 + 4 * i, 32), (30 * i, 120 * c, 9)).save(data / cls / f"{i}.png")
    rows = [f"img/{cls}/{i}.png,{cls}" for cls in ("real", "fake") for i in range(n)]
    csv_text, target = None, data
    for fault in faults:
        if fault == "dangling":
            (data / "real" / "gone.png").symlink_to(root / "nowhere.png")
        elif fault == "loop":
            (data / "fake" / "l1.png").symlink_to(data / "fake" / "l2.png")
            (data / "fake" / "l2.png").symlink_to(data / "fake" / "l1.png")
        elif fault == "dir-loop":
            (data / "real" / "up").symlink_to(data)
        elif fault == "duplicate":
            (data / "real" / "copy.png").write_bytes((data / "real" / "0.png").read_bytes())
        elif fault == "both-classes":
            (data / "fake" / "r.png").symlink_to(data / "real" / "1.png")
        elif fault == "bomb":
            _png_header(data / "fake" / "bomb.png", 30000, 30000)
        elif fault == "sixteen-bit":
            Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(data / "real" / "g16.png")
        elif fault == "float":
            Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(data / "real" / "f.png", format="TIFF")
        elif fault == "garbage":
            (data / "fake" / "junk.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        elif fault == "empty-class":
            for p in (data / "fake").iterdir():
                p.unlink()
        elif fault == "no-class":
            (data / "fake").rename(root / "elsewhere")
        elif fault == "tiny-class":
            for p in sorted((data / "real").iterdir())[1:]:
                p.unlink()
        elif fault.startswith("csv"):
            lines = ["path,label"] + rows
            if fault == "csv-dup":
                lines += rows[:1]
            elif fault == "csv-columns":
                lines[0] = "file,kind"
            elif fault == "csv-label":
                lines[1] = lines[1].replace(",real", ",maybe")
            elif fault in ("csv-split", "csv-split-no-fakes"):
                lines = ["path,label,split"] + [
                    f"{r},{'train' if fault == 'csv-split-no-fakes' and 'fake' in r else ('tset' if i == 0 and fault == 'csv-split' else ('test' if i % 2 else 'train'))}"  # noqa: E501
                    for i, r in enumerate(rows)]
            elif fault == "csv-missing":
                lines.append("img/real/absent.png,real")
            elif fault == "csv-short-row":
                lines.append("img/real/0.png")
            csv_text = ("\n".join(lines) + "\n").encode()
            if fault == "csv-latin1":
                csv_text += b"img/real/caf\xe9.png,real\n"
            elif fault == "csv-nul":
                csv_text += b"img/real/\x00.png,real\n"
    if csv_text is not None:
        target = root / "manifest.csv"
        target.write_bytes(csv_text)
    return target


def _snapshot(root: Path) -> set[tuple[str, int, int]]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            out.add((str(p.relative_to(root)), st_.st_size, st_.st_mtime_ns))
    return out


def _check(root: Path, args: list[str]) -> None:
    before = _snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        os.chdir(cwd)
    message = err.getvalue()
    assert code in (0, 2), (code, message)
    if code == 2:
        assert message.startswith("error: ") and message.count("\n") == 1, message
        assert str(root) in message, f"the message names no file: {message}"
        assert ": " in message.split(str(root), 1)[1], f"the message names no field or problem: {message}"
        assert len(message) < 2200
    assert _snapshot(root) == before, "bench validate wrote something"


FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@settings(FUZZ, max_examples=400)
@given(suites())
def test_fuzzed_suites_exit_0_or_2_naming_the_file(text: bytes):
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        root = Path(tmp)
        (root / "suite.yaml").write_bytes(text)
        _check(root, ["validate", str(root / "suite.yaml")])


GOOD = b"""\
name: t
data: {source: synthetic-faces, n: 40, size: 32}
models:
  a: {arch: tiny, recipe: {epochs: 1}}
attacks:
  f: {attack: fgsm, backend: art, eps: [0.02]}
"""


@settings(FUZZ, max_examples=200)
@given(data_folders())
def test_fuzzed_data_folders_exit_0_or_2_naming_the_file(case: tuple[list[str], int]):
    faults, n = case
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        root = Path(tmp)
        (root / "suite.yaml").write_bytes(GOOD)
        target = _build_data(root, faults, n)
        _check(root, ["validate", str(root / "suite.yaml"), "--data", str(target)])
