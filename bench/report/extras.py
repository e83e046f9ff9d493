"""Leaderboard sections for optional suite parts (cross-checks, DIP protocol)."""

from __future__ import annotations

from pathlib import Path


def extra_sections(board, out_dir: Path, stem: str) -> list[str]:
    return []
