"""Leaderboard sections for optional suite parts: the DIP protocol (Tables III, IV, Fig. 6) and cross-checks."""

from __future__ import annotations

from pathlib import Path

from bench.crosscheck.section import crosscheck_section
from bench.dip.report import dip_sections


def extra_sections(board, out_dir: Path, stem: str) -> list[str]:
    parts = [dip_sections(board, out_dir, stem)]
    if board.s.crosscheck:
        parts.append(crosscheck_section(board))
    return [p for p in parts if p]
