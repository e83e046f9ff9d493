"""What several tests do with the command line: run `bench` in-process, write a suite from a dict."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import yaml

from bench.cli import main


def bench(*args: str) -> tuple[int, str]:
    """`bench ARGS` in this process: (exit status, what it wrote to stderr); stdout is dropped."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def write_suite(tmp_path: Path, doc: dict, name: str = "s.yaml", sort_keys: bool = True) -> Path:
    """The suite `doc` as YAML in `tmp_path / name`."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=sort_keys))
    return path


def without_rendering_commit(board: str) -> str:
    """A leaderboard without the one thing its store does not decide: which commit rendered it (the header's
    "- Numbers:" line names the computing commit, from the store, and the rendering one, from the checkout)."""
    return re.sub(r"^(- Numbers: .*?); rendered by .*$", r"\1; rendered by (the checkout)", board, flags=re.M)
