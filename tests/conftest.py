"""Shared fixtures: every test writes under a temporary folder (ART, matplotlib and bench caches too)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = tempfile.mkdtemp(prefix="bench-tests-")
os.environ.setdefault("ART_DATA_PATH", os.path.join(_TMP, "art"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "mpl"))
os.environ.setdefault("BENCH_HOME", os.path.join(_TMP, "home"))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a small shared machine, two spinning threads can be 100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BENCH_HOME for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("BENCH_HOME", str(h))
    return h
