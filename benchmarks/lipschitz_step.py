"""Cost of a Lipschitz-regularised training step against a plain one, measured side by side.

ResNet-18 (2-logit head) at 64 x 64, batch 16, the paper's SGD recipe. Each run times `--steps`
steps of each kind after `--warmup` untimed steps, alternating which kind goes first; the result is
the median over runs of the mean step time, and their ratio (regularised / plain). A step is exactly
what `bench.models.training.train_detector` does per batch: forward, cross-entropy, the defense's
extra loss (two input-gradient passes with create_graph, for C = 2), backward, SGD update.

    python benchmarks/lipschitz_step.py --runs 7 --steps 5 [--device cuda] [--threads 1] [--json out.json]

On a busy shared CPU, pass `--threads 1`: two intra-op threads competing with other processes for
two cores can make steps many times slower and the timings meaningless.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from bench.defenses.lipschitz import LipschitzRegularisation
from bench.models import create_model
from bench.models.device import resolve_device
from bench.models.training import Recipe


def make_step(detector, defense: LipschitzRegularisation | None, recipe: Recipe):
    opt = torch.optim.SGD(detector.parameters(), lr=recipe.lr, momentum=recipe.momentum)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        if defense is not None and defense.needs_input_grad():
            x = x.detach().requires_grad_(True)
        logits = detector(x)
        loss = F.cross_entropy(logits, y)
        if defense is not None:
            extra = defense.extra_loss(detector, x, y, logits)
            if extra is not None:
                loss = loss + extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, x: torch.Tensor, y: torch.Tensor, n: int, device: torch.device) -> float:
    """Mean seconds per step over `n` steps."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step(x, y)
    _sync(device)
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lam", type=float, default=50.0)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU); default: torch's")
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    torch.manual_seed(0)
    recipe = Recipe()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)
    y = (torch.arange(args.batch) % 2).to(device)
    models = {}
    for kind in ("plain", "regularised"):
        torch.manual_seed(0)  # same initial weights for both
        models[kind] = create_model(args.arch, input_size=args.size).to(device).train()
    steps = {
        "plain": make_step(models["plain"], None, recipe),
        "regularised": make_step(models["regularised"], LipschitzRegularisation(args.lam), recipe),
    }
    for step in steps.values():
        for _ in range(args.warmup):
            step(x, y)
    times: dict[str, list[float]] = {"plain": [], "regularised": []}
    for r in range(args.runs):
        order = ("plain", "regularised") if r % 2 == 0 else ("regularised", "plain")
        for kind in order:
            times[kind].append(time_steps(steps[kind], x, y, args.steps, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    per_run = [r / p for r, p in zip(times["regularised"], times["plain"], strict=True)]
    result = {
        "arch": args.arch,
        "input_size": args.size,
        "batch_size": args.batch,
        "lambda": args.lam,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "runs": args.runs,
        "steps_per_run": args.steps,
        "plain_step_s": times["plain"],
        "regularised_step_s": times["regularised"],
        "median_plain_step_s": med["plain"],
        "median_regularised_step_s": med["regularised"],
        "ratio_of_medians": med["regularised"] / med["plain"],
        "median_of_run_ratios": statistics.median(per_run),
    }
    print(f"{args.arch} {args.size}x{args.size} batch {args.batch}, lambda {args.lam:g}, on {result['device']}")
    print(f"{'run':>4} {'plain (ms)':>12} {'regularised (ms)':>18} {'ratio':>7}")
    for i, (p, q) in enumerate(zip(times["plain"], times["regularised"], strict=True)):
        print(f"{i:>4} {1e3 * p:>12.1f} {1e3 * q:>18.1f} {q / p:>7.2f}")
    print(
        f"median {1e3 * med['plain']:>10.1f} {1e3 * med['regularised']:>18.1f} "
        f"{result['ratio_of_medians']:>7.2f}  (median of run ratios {result['median_of_run_ratios']:.2f})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
