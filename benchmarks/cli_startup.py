"""How long the command line takes to answer: CPU time (user + sys) of `bench --help`, `bench list` and
`bench validate suites/paper.yaml`, for a baseline checkout and this one, side by side.

Each command runs in a fresh interpreter with the tree first on PYTHONPATH (so the same installed packages
serve both), `--repeat` times; the table shows the median of each, the ratio and the target (--help and list
<= 1 s, validate <= 2 s of CPU on the 2-core development machine). The baseline is a checkout of the code
before the lazy imports (e.g. the main checkout, or `git worktree add /tmp/base <commit>`).

    python benchmarks/cli_startup.py --before /work/main [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [(["--help"], 1.0), (["list"], 1.0), (["validate", "suites/paper.yaml"], 2.0)]


def cpu_seconds(tree: Path, args: list[str]) -> float:
    """User + sys CPU seconds of `python -m bench ARGS` run from `tree` with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=tree, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: bench {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--after", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for cmd, target in COMMANDS:
        times = {}
        for name, tree in (("before", args.before), ("after", args.after)):
            times[name] = statistics.median(cpu_seconds(tree.resolve(), cmd) for _ in range(args.repeat))
        rows.append((f"bench {' '.join(cmd)}", times["before"], times["after"], target))
    print(f"CPU seconds (user + sys), median of {args.repeat} runs, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}")
    print(f"{'command':36s} {'before':>8s} {'after':>8s} {'ratio':>7s} {'target':>7s}  ok")
    for name, before, after, target in rows:
        print(f"{name:36s} {before:8.2f} {after:8.2f} {before / after:6.1f}x {target:7.1f}  "
              f"{'yes' if after <= target else 'NO'}")
    return 0 if all(after <= target for *_, after, target in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
