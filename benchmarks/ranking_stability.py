"""Does a leaderboard's defense ranking survive a rerun elsewhere (another thread count, another CPU)?

Reads the "Defense ranking" table of two leaderboards of the same suite and profile and lists every pair of
rows that the first one orders (different ranks, so disjoint intervals) and the second one orders the other
way round. Ties ("tied") assert nothing, so a pair tied in either table cannot swap. Also prints each row's
worst-case accuracy in both, and the largest change of any Table II mean.

    python benchmarks/ranking_stability.py A.md B.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def table(md: str, heading: str) -> list[list[str]]:
    """The rows of the markdown table under `## heading` (header included), cells stripped."""
    part = md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in part.splitlines()
            if line.startswith("|") and not line.startswith("|--")]


def bare(label: str) -> str:
    """A row's model without its flags, which may differ between the two runs."""
    return re.sub(r" \(\d+ of \d+ seeds flagged\)| †", "", label).strip()


def ranking(md: str) -> dict[str, tuple[int, str]]:
    """Model -> (rank, worst-case cell text)."""
    rows = table(md, "Defense ranking")
    head = rows[0]
    out = {}
    for r in rows[1:]:
        rank = int(re.match(r"\d+", r[0]).group())
        out[bare(r[1])] = (rank, r[head.index("Worst case (per image, all attacks)")])
    return out


def means(md: str, heading: str) -> dict[tuple[str, str], float]:
    rows = table(md, heading)
    head = rows[0]
    out = {}
    for r in rows[1:]:
        for h, c in zip(head[1:], r[1:], strict=False):
            m = re.match(r"\**([\d.]+)%", c)
            if m:
                out[(bare(r[0]), h)] = float(m.group(1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    a, b = args.a.read_text(), args.b.read_text()
    ra, rb = ranking(a), ranking(b)
    print(f"{'model':60s} {'rank A':>7s} {'rank B':>7s}  worst case A | worst case B")
    for m, (rank, text) in ra.items():
        other = rb.get(m, (None, "missing"))
        print(f"{m[:60]:60s} {rank:>7} {other[0]!s:>7}  {text} | {other[1]}")
    swaps = [(x, y) for x in ra for y in ra if x in rb and y in rb
             and ra[x][0] < ra[y][0] and rb[x][0] > rb[y][0]]
    print(f"\npairs A orders: {sum(1 for x in ra for y in ra if ra[x][0] < ra[y][0])}; "
          f"of those, ordered the other way in B: {len(swaps)}")
    for x, y in swaps:
        print(f"  swapped: {x} above {y} in A, below in B")
    for heading in ("Table I: unperturbed test images", "Table II: accuracy on perturbed fake test images"):
        ma, mb = means(a, heading), means(b, heading)
        common = [k for k in ma if k in mb]
        if common:
            worst = max(common, key=lambda k: abs(ma[k] - mb[k]))
            print(f"{heading}: {len(common)} means compared; largest change {ma[worst]:.1f}% -> {mb[worst]:.1f}% "
                  f"({worst[0]}, {worst[1]})")
    return 1 if swaps else 0


if __name__ == "__main__":
    sys.exit(main())
