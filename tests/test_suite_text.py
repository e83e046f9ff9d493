"""Text from a suite is data: names are single-line identifiers, labels one line, and whatever a label or a
description holds, it cannot add a column, a row or a heading to the leaderboard (issue 24)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import bench, write_suite

from bench.report.format import md_inline, tabulate

BASE = {
    "name": "hostile",
    "description": "first line\n## injected heading\n| a | b |\n\nlast",
    "data": {"source": "synthetic-faces", "n": 48, "size": 32},
    "models": {
        "a": {"arch": "tiny", "label": "A | B ## not a heading", "recipe": {"epochs": 1}},
        "b": {"arch": "tiny", "label": "x|y|z `code` <b>", "recipe": {"epochs": 1}},
    },
    "defenses": {"j": {"use": "jpeg", "params": {"quality": 75}, "applies_to": ["a"], "label": "J|PEG"}},
    "attacks": {"f": {"attack": "fgsm", "backend": "art", "eps": [0.01, 0.03]}},
    "threat_models": {"white_box": True, "transfer": [["a", "b"]]},
    "evaluation": {"max_attack_images": 8, "attack_batch_size": 8, "gradient_norm_images": 8},
    "report": {"figures": False},
}


def write(tmp_path: Path, doc: dict) -> Path:
    return write_suite(tmp_path, doc, "s.yaml", sort_keys=False)


def columns(line: str) -> int:
    """The cells of a markdown table row: `|` that is not escaped splits."""
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def tables(board: str) -> list[list[str]]:
    out, block = [], []
    for line in board.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            out.append(block)
            block = []
    return out


@pytest.mark.parametrize("path, value, message", [
    (("models", "a\nb"), {"arch": "tiny"}, "cannot be a name"),
    (("models", "a b"), {"arch": "tiny"}, "cannot be a name"),
    (("models", "a|b"), {"arch": "tiny"}, "cannot be a name"),
    (("attacks", "f\n# x"), {"attack": "fgsm", "backend": "art", "eps": 0.01}, "cannot be a name"),
    (("profiles", "../x"), {}, "cannot be a name"),
    (("models", "a", "label"), "A\n## injected", "a label is one line of text"),
    (("models", "a", "label"), "A\tB", "a label is one line of text"),
    (("defenses", "j", "label"), "J\rK", "a label is one line of text"),
    (("description",), "text \x1b[31m red", "holds a control character"),
])
def test_names_are_identifiers_and_labels_single_lines(tmp_path, path, value, message):
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node = doc
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value
    code, err = bench("validate", str(write(tmp_path, doc)))
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_every_markdown_table_cell_is_escaped():
    text = tabulate([["A | B\n## x", 1.5]], ["Model | x", "n"], tablefmt="github")
    assert all(columns(li) == 2 for li in text.splitlines())
    assert "## x" not in text.splitlines()[0:1] and md_inline("a\n# b|c") == "a # b&#124;c"
    assert tabulate([["a|b"]], ["h"], tablefmt="simple").splitlines()[-1] == "a|b"  # console tables as they are


@pytest.mark.slow  # trains: also run at OMP_NUM_THREADS=1 by .ci/run
def test_hostile_labels_and_description_leave_every_tables_columns_intact(tmp_path):
    suite = write(tmp_path, BASE)
    code, err = bench("run", str(suite), "--home", str(tmp_path / "home"), "--out", str(tmp_path / "lb"), "--quiet")
    assert code == 0, err
    board = (tmp_path / "lb" / "hostile.md").read_text()
    found = tables(board)
    assert len(found) >= 5
    for block in found:
        widths = {columns(li) for li in block}
        assert len(widths) == 1, "\n".join(block)
    lines = board.splitlines()
    assert not any(li.startswith("## injected") for li in lines)
    assert "first line ## injected heading &#124; a &#124; b &#124; last" in board
    table_i = next(b for b in found if b[0].startswith("| Model"))
    assert any(li.startswith("| A &#124; B ## not a heading ") for li in table_i), table_i


def test_tables_are_made_only_through_the_escaping_tabulate():
    """Every leaderboard table passes through `bench.report.format.tabulate`: no other module imports the
    tabulate package."""
    root = Path(__file__).resolve().parents[1] / "bench"
    pattern = re.compile(r"^\s*(from tabulate import|import tabulate)", re.M)
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if p.name != "format.py" and pattern.search(p.read_text())]
    assert not direct, f"import tabulate from bench.report.format instead: {direct}"
