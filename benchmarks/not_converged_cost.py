"""The not-converged reruns of a suite profile against the fixed PGD convergence pair they replace, side by side.

For every rerun check cell of the plan (`evaluation.checks.longer_runs`: the suite's iterative and minimum-norm
attacks at their table points with twice their iterations, on `longer_runs.n` fakes) and, for comparison, the
PGD pair the quick profile ran before (PGD eps 0.02, 20 and 40 steps of 0.002, on `checks.n` fakes, per model),
runs the attack on its source variant and prints the CPU time of each (process time: what the work costs on an
idle machine, single-threaded), the totals and their ratio.

Detectors: the trained checkpoints under `--home` when the profile has run there, else randomly initialised
ones of the same architectures (same passes per image for APGD and FMN; CW-L2 then runs its full iterations
with no early abort, an upper bound). The attacked images are the plan's attacked fakes.

    python benchmarks/not_converged_cost.py --suite suites/paper.yaml --profile quick [--home .bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.attacks.params import PGDParams
from bench.attacks.registry import run_attack
from bench.data.sources import load_data
from bench.defenses.apply import apply_defense
from bench.models import create_model
from bench.models.checkpoint import load_saved_detector
from bench.suite.load import load_suite
from bench.suite.planner import plan_for_data

OLD_PAIR = [PGDParams(eps=0.02, norm="linf", steps=s, step_size=0.002, random_start=False) for s in (20, 40)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suites/paper.yaml")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--home", default=".bench")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ls = load_suite(args.suite, args.profile)
    s = ls.suite
    train, test = load_data(s.data, s.seed, ls.base_dir)
    plan = plan_for_data(ls, train, test)
    index = {i: n for n, i in enumerate(test.ids)}
    x_all = test.images[[index[i] for i in plan.attack_ids]]
    bases: dict[str, torch.nn.Module] = {}
    trained = 0

    def detector(variant: str):
        v = plan.variants[variant]
        if v.model not in bases:
            mc = plan.models[v.model]
            path = Path(args.home) / "checkpoints" / f"{v.model}-{mc.key[:16]}.safetensors"
            nonlocal trained
            if path.is_file():
                bases[v.model], trained = load_saved_detector(path).eval(), trained + 1
            else:
                cfg = mc.model.config
                bases[v.model] = create_model(cfg.arch, s.data.size, cfg.mean, cfg.std).eval()
        if v.defense is None:
            return bases[v.model]
        d = s.defenses[v.defense]
        return apply_defense(bases[v.model], v.defense, d.use, d.params, ls.base_dir)

    def timed(det, attack: str, backend: str, params, n: int) -> float:
        x = x_all[:n]
        y = torch.zeros(len(x), dtype=torch.int64)  # fakes
        torch.manual_seed(0)
        t0 = time.process_time()
        run_attack(attack, backend, det, x, y, params)
        return time.process_time() - t0

    reruns = [c for c in plan.attacks if c.attack.role == "check" and c.attack.reference is not None]
    new = 0.0
    for c in reruns:
        cpu = timed(detector(c.source.name), c.attack.attack, c.attack.backend, c.attack.params_model(),
                    c.attack.images or len(x_all))
        new += cpu
        print(f"rerun    {c.attack.label:20s} {c.source.name:36s} n={c.attack.images:3d} {cpu:7.1f} s", flush=True)
    old = 0.0
    for name in plan.models:
        for p in OLD_PAIR:
            cpu = timed(detector(name), "pgd", "native", p, s.evaluation.checks.n)
            old += cpu
            print(f"old pair pgd steps={p.steps:<13d} {name:36s} n={s.evaluation.checks.n:3d} {cpu:7.1f} s", flush=True)
    print(f"\n{len(reruns)} rerun cells: {new:.1f} s CPU; the PGD pair ({2 * len(plan.models)} cells): "
          f"{old:.1f} s CPU; ratio {new / old:.2f}. Detectors: {trained} of {len(bases)} trained (others random).")


if __name__ == "__main__":
    main()
