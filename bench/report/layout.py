"""What a leaderboard's reading path must satisfy, checkable on any rendered file:

- the summary starts within the first `SUMMARY_WITHIN` lines;
- the main document (everything before `## Appendix`) is at most `MAIN_MAX_LINES` lines;
- no table in it has more than `MAX_TABLE_COLUMNS` columns.

`python -m bench.report.layout leaderboard/paper-quick.md` prints what fails (exit 1) or `ok` per file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

APPENDIX = "## Appendix"
SUMMARY = "## Summary"
SUMMARY_WITHIN = 40
MAIN_MAX_LINES = 400
MAX_TABLE_COLUMNS = 10
_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def main_part(text: str) -> list[str]:
    """The lines before the appendix (all lines when there is none)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == APPENDIX or line.startswith(APPENDIX + " "):
            return lines[:i]
    return lines


def table_widths(lines: list[str]) -> list[tuple[int, int]]:
    """(line number, columns) of every markdown table, read from its header separator row."""
    return [(i + 1, line.count("|") - 1) for i, line in enumerate(lines) if _SEPARATOR.match(line)]


def layout_problems(text: str) -> list[str]:
    main = main_part(text)
    problems = []
    at = next((i + 1 for i, line in enumerate(main) if line.strip() == SUMMARY), None)
    if at is None or at > SUMMARY_WITHIN:
        problems.append(f"the summary starts at line {at or 'never'}, not within the first {SUMMARY_WITHIN}")
    if len(main) > MAIN_MAX_LINES:
        problems.append(f"the main document is {len(main)} lines (at most {MAIN_MAX_LINES})")
    for line, cols in table_widths(main):
        if cols > MAX_TABLE_COLUMNS:
            problems.append(f"the table at line {line} has {cols} columns (at most {MAX_TABLE_COLUMNS})")
    return problems


def main(argv: list[str]) -> int:
    bad = 0
    for name in argv:
        problems = layout_problems(Path(name).read_text())
        print(f"{name}: " + ("ok" if not problems else "; ".join(problems)))
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
