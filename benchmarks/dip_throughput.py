"""DIP purification throughput: batched against one image at a time, side by side, with the machine's
floating-point rate measured in the same run.

For each image size, three ways of running the same DIP iteration (jitter z, forward through the
skip network, MSE, backward, Adam, moving average) are timed in alternating rounds:

- `plain, 1 at a time`: `SkipNet` (an `nn.Module`) and `torch.optim.Adam`, one image, as in the
  DIP reference code (`ReferenceFitter`, the tests' oracle in `tests/dip_reference.py`);
- `engine, 1 at a time`: the batched engine (`DIPFitter`) with a batch of one;
- `engine, batch B`: the batched engine with B images at once, for each B of `--batches`, using the
  intra-op threads;
- `engine, batch B in W threads`: the same B images split over W fitters stepped in parallel Python
  threads with one intra-op thread each (what `purify` does on a CPU; W = `--workers`, default the
  thread count).

Each round times `--steps` iterations after `--warmup` untimed ones, on fresh networks; the result
is the median over `--rounds` rounds. Reported per variant: seconds per image-iteration, seconds per
image per 1,000 iterations, images per hour at `--iterations` iterations per image (default 6,000,
the paper's readout: purification stops there), the speed-up over each one-at-a-time variant, and
the achieved GFLOP/s (FLOPs of one image-iteration, counted by `torch.utils.flop_counter` on the
engine, divided by the time) as a fraction of the matrix-product rate: a 2048 x 2048 float32 matmul,
timed at the start and at the end of the run (their mean is the reference).

    python benchmarks/dip_throughput.py [--sizes 64 32] [--batches 8 16 40] [--steps 5] [--rounds 3]
        [--iterations 6000] [--threads N] [--workers W] [--device cuda] [--full B] [--json out.json]

On a shared machine the load average (printed) matters: other processes competing for the cores
slow everything, and two intra-op threads that wait on each other can make steps many times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.dip import DIPConfig, purify
from bench.dip.engine import DIPFitter
from bench.models.device import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the one-image reference lives with the tests
from dip_reference import ReferenceFitter  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Best-of-`reps` float32 matrix-product rate in GFLOP/s."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_image_iteration(size: int, config: DIPConfig, device: torch.device) -> float:
    """FLOPs of one engine iteration for one image (convolutions and matrix products, forward and backward)."""
    fitter = DIPFitter(torch.rand(1, 3, size, size), config, [0], device)
    fitter.step()
    with FlopCounterMode(display=False) as counter:
        fitter.step()
    return float(counter.get_total_flops())


def time_variant(
    kind: str, batch: int, workers: int, size: int, config: DIPConfig, steps: int, warmup: int, device
) -> float:
    """Seconds per image-iteration of one variant, on fresh networks and images. With `workers` > 1 the
    batch is split over that many fitters stepped in parallel threads with one intra-op thread each
    (what `purify` does on a CPU)."""
    g = torch.Generator().manual_seed(batch)
    images = torch.rand(batch, 3, size, size, generator=g)
    if kind == "plain":
        fitters = [ReferenceFitter(images[0], config, seed=0, device=device)]
    else:
        parts = [list(range(batch))[i::workers] for i in range(workers)]
        fitters = [DIPFitter(images[p], config, p, device) for p in parts if p]

    def run(fitter, n: int) -> None:
        for _ in range(n):
            fitter.step()

    threads = torch.get_num_threads()
    try:
        if len(fitters) > 1:
            torch.set_num_threads(1)
        with ThreadPoolExecutor(max_workers=len(fitters)) as pool:
            list(pool.map(run, fitters, [warmup] * len(fitters)))
            _sync(device)
            t0 = time.perf_counter()
            list(pool.map(run, fitters, [steps] * len(fitters)))
            _sync(device)
            elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return elapsed / (steps * batch)


def full_run(batch: int, size: int, iterations: int, device: torch.device) -> dict:
    """Wall-clock time of `purify` on `batch` synthetic faces, all iterations, read out at the last."""
    from bench.data.dataset import ImageSet
    from bench.data.synthetic import generate_synthetic_faces

    images = ImageSet.from_uint8(*generate_synthetic_faces(batch, size, 0)).images
    config = DIPConfig(iterations=iterations, readout=iterations, batch_size=batch)
    _sync(device)
    result = purify(images, config, seed=0, device=device)
    _sync(device)
    return {
        "images": batch,
        "size": size,
        "iterations": iterations,
        "seconds": result.seconds,
        "seconds_per_image": result.seconds / batch,
        "workers": result.workers,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 40])
    ap.add_argument("--steps", type=int, default=5, help="timed iterations per variant and round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=6000, help="iterations per image for images/hour")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU); default: torch's")
    ap.add_argument("--workers", type=int, default=None, help="parallel fitters for batches (default: threads)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument(
        "--full",
        type=int,
        default=0,
        metavar="B",
        help="also purify B synthetic faces end to end with `purify` for --iterations iterations each "
        "(read out at the last), in batches of B, and report wall-clock seconds per image",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = DIPConfig()
    load0 = os.getloadavg()
    mm0 = matmul_gflops(device)
    workers = args.workers or (torch.get_num_threads() if device.type == "cpu" else 1)
    variants = [("plain", 1, 1), ("engine", 1, 1)] + [("engine", b, 1) for b in args.batches]
    if workers > 1:
        variants += [("engine", b, workers) for b in args.batches]
    results: dict = {}
    for size in args.sizes:
        flops = flops_per_image_iteration(size, config, device)
        times: dict[str, list[float]] = {}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for kind, batch, w in order:
                name = f"{kind}, 1 at a time" if batch == 1 else f"{kind}, batch {batch}"
                name += f" in {w} threads" if w > 1 else ""
                sec = time_variant(kind, batch, w, size, config, args.steps, args.warmup, device)
                times.setdefault(name, []).append(sec)
        results[size] = {"flops_per_image_iteration": flops, "levels": config.levels_for(size, size), "variants": {}}
        for name, ts in times.items():
            results[size]["variants"][name] = {"seconds_per_image_iteration": statistics.median(ts), "all": ts}
    mm1 = matmul_gflops(device)
    load1 = os.getloadavg()
    mm = (mm0 + mm1) / 2
    out = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "workers": workers,
            "device": str(device),
            "load_average_start": load0,
            "load_average_end": load1,
        },
        "matmul_gflops": {"start": mm0, "end": mm1, "mean": mm},
        "iterations_per_image": args.iterations,
        "steps": args.steps,
        "rounds": args.rounds,
        "sizes": {},
    }
    print(f"device {device}, {torch.get_num_threads()} threads, load average {load0[0]:.2f} -> {load1[0]:.2f}")
    print(f"matmul 2048^2 float32: {mm0:.1f} GFLOP/s at start, {mm1:.1f} at end")
    for size, res in results.items():
        flops = res["flops_per_image_iteration"]
        plain = res["variants"]["plain, 1 at a time"]["seconds_per_image_iteration"]
        single = res["variants"]["engine, 1 at a time"]["seconds_per_image_iteration"]
        print(
            f"\n{size} x {size} ({res['levels']} levels), {flops / 1e6:.0f} MFLOP per image-iteration, "
            f"images/hour at {args.iterations} iterations each:"
        )
        print(
            f"{'variant':30s} {'ms/img-it':>9s} {'s/img/1k it':>11s} {'img/hour':>9s} {'x plain':>8s} "
            f"{'x engine1':>9s} {'GFLOP/s':>8s} {'of matmul':>9s}"
        )
        for name, v in res["variants"].items():
            s = v["seconds_per_image_iteration"]
            v.update(
                seconds_per_image_per_1000=s * 1000,
                images_per_hour=3600 / (s * args.iterations),
                speedup_vs_plain=plain / s,
                speedup_vs_engine_single=single / s,
                gflops=flops / s / 1e9,
                fraction_of_matmul=flops / s / 1e9 / mm,
            )
            print(
                f"{name:30s} {s * 1e3:9.2f} {s * 1000:11.2f} {v['images_per_hour']:9.1f} {v['speedup_vs_plain']:8.2f} "
                f"{v['speedup_vs_engine_single']:9.2f} {v['gflops']:8.1f} {100 * v['fraction_of_matmul']:8.1f}%"
            )
        out["sizes"][str(size)] = res
    if args.full:
        out["full"] = full_run(args.full, args.sizes[0], args.iterations, device)
        f = out["full"]
        print(
            f"\nend to end: purify {f['images']} images of {f['size']} x {f['size']}, {f['iterations']} iterations "
            f"each, batch {f['images']}: {f['seconds']:.1f} s, {f['seconds_per_image']:.2f} s per image, "
            f"{3600 / f['seconds_per_image']:.0f} images/hour"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
