"""Does the defense ranking survive a rerun elsewhere (another thread count, another CPU)?

Reads the same suite (and profile) from two stores, e.g. one run at OMP_NUM_THREADS=1 and one at 2, computes
the ranking of each (`bench.report.ranking`: both axes, the paired comparisons) and, per axis, prints each
row's value, interval and rank in both, how many pairs each separates, and every pair that one separates
and the other orders the other way round:

- **swapped**: separated in both, in opposite directions (the ranking contradicts itself across machines);
- **reversed**: separated in one, the other's point values order it the other way (not separated there).

A pair separated in one store and tied in the other is listed as such (the interval widened or moved: not a
contradiction). Also prints the largest change of any stored cell's accuracy between the two stores.
Exit status 1 when any separated pair is swapped or reversed.

    OMP_NUM_THREADS=1 bench run SUITE --home H1;  OMP_NUM_THREADS=2 bench run SUITE --home H2
    python benchmarks/ranking_stability.py H1 H2 SUITE [--profile P]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.report.board import Board
from bench.report.ranking import AXES, Ranking, axis_text, compute_ranking
from bench.results.query import Results, load_results
from bench.results.store import ResultStore


def ranking_of(home: Path, suite: str, profile: str | None, out: Path) -> tuple[Ranking, Results]:
    results = load_results(ResultStore(home / "results.sqlite"), suite, profile)
    return compute_ranking(Board(results, out)), results


def separated_pairs(rk: Ranking, axis: str) -> dict[tuple[str, str], bool]:
    """(upper, lower) by point value -> separated."""
    return {(p.a, p.b): p.separated for p in rk.pairs[axis]}


def compare_axis(a: Ranking, b: Ranking, axis: str) -> tuple[int, int]:
    """Print one axis's table and its unstable pairs; returns (swapped, reversed)."""
    print(f"\n== {axis}: separated pairs A {a.separated[axis][0]} of {a.separated[axis][1]}, "
          f"B {b.separated[axis][0]} of {b.separated[axis][1]}")
    print(f"{'model':44s} {'rank A':>7s} {'rank B':>7s}  A | B")
    for name in a.order:
        va, vb = a.rows[name][axis], b.rows.get(name, {}).get(axis)
        print(f"{a.labels[name][:44]:44s} {va.rank!s:>7} {(vb.rank if vb else None)!s:>7}  "
              f"{axis_text(va, axis)} | {axis_text(vb, axis) if vb else 'missing'}")
    pa, pb = separated_pairs(a, axis), separated_pairs(b, axis)
    swapped = reversed_ = 0
    for mine, other, first, second in (("A", "B", pa, pb), ("B", "A", pb, pa)):
        for (hi, lo), sep in first.items():
            if not sep:
                continue
            if second.get((lo, hi)) is True:  # separated both ways round: listed once, from A's side
                if mine == "A":
                    swapped += 1
                    print(f"  SWAPPED: {hi} above {lo} in A, below in B (separated in both)")
            elif second.get((lo, hi)) is False:
                reversed_ += 1
                print(f"  reversed: {hi} above {lo} separated in {mine}; {other} orders them the other way")
            elif second.get((hi, lo)) is False:
                print(f"  tied in {other}: {hi} above {lo} separated in {mine} only")
    return swapped, reversed_


def largest_change(ra: Results, rb: Results) -> str:
    """The largest change of a stored cell's accuracy (clean and attack cells, matched by key)."""
    def accs(r: Results) -> dict[str, tuple[str, float]]:
        out = {}
        for v in r.variants.to_dict("records"):
            if isinstance(v["metrics"], dict):
                out[v["clean_key"]] = (f"clean {v['label']}", v["metrics"]["accuracy"]["value"])
        for c in r.attacks.to_dict("records"):
            if isinstance(c["metrics"], dict):
                out[c["key"]] = (f"{c['label']} {c['source']} -> {c['target']}", c["metrics"]["accuracy"]["value"])
        return out

    a, b = accs(ra), accs(rb)
    common = [k for k in a if k in b]
    if not common:
        return "no cell in common"
    k = max(common, key=lambda k: abs(a[k][1] - b[k][1]))
    return (f"{len(common)} cells compared; largest accuracy change {100 * a[k][1]:.1f}% -> {100 * b[k][1]:.1f}% "
            f"({a[k][0]})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home_a", type=Path)
    ap.add_argument("home_b", type=Path)
    ap.add_argument("suite", help="the suite's name (as stored)")
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, res_a = ranking_of(args.home_a, args.suite, args.profile, Path(tmp))
        b, res_b = ranking_of(args.home_b, args.suite, args.profile, Path(tmp))
    print(f"A: {args.home_a}  B: {args.home_b}  headline {a.headline} | {b.headline}")
    for tag, res in (("A", res_a), ("B", res_b)):
        m = (res.run or {}).get("machine") or {}
        print(f"{tag}: CPU {m.get('cpu', '?')}, torch threads {m.get('torch_threads', '?')}")
    bad = 0
    for axis in AXES:
        swapped, reversed_ = compare_axis(a, b, axis)
        print(f"{axis}: swapped {swapped}, reversed {reversed_}")
        bad += swapped + reversed_
    print("\n" + largest_change(res_a, res_b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
