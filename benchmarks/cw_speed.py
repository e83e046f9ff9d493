"""CW-L2 at the paper's settings from native, Foolbox and ART, side by side, on ResNet-18 at 64 x 64.

Same detector, same images, same batch (all `--n` images in one batch for every implementation),
same parameters: kappa 200, c in [1e2, 1e4], 5 search steps, 1,000 iterations, learning rate 0.01
by default. Prints the cross-check report (strength, agreement, counted passes, and on how many
images a margin-maximising PGD reaches kappa at all) and the throughput ratios native / Foolbox and
native / ART, with the targets (at least 1.5x and 5x). `--json` also keeps each implementation's
per-image success, L2 and L-inf.

The detector is ResNet-18 trained with the paper's recipe on synthetic faces (cached under
`--cache`), or `--checkpoint`. The attacked images are held-out synthetic faces it classifies
correctly. At the paper's scale this takes hours on a CPU (ART above all); reduce `--n`,
`--iterations` and `--steps` to fit, and say what you ran.

    python benchmarks/cw_speed.py --n 8 --iterations 100 --steps 3 --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench.attacks.params import CWL2Params
from bench.crosscheck.compare import Tolerances, crosscheck, crosscheck_records
from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.models.checkpoint import load_saved_detector, save_detector
from bench.models.detector import Detector
from bench.models.device import resolve_device
from bench.models.registry import create_model
from bench.models.training import Recipe, train_detector

TARGETS = {"foolbox": 1.5, "art": 5.0}  # native throughput must be at least this multiple


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32, help="images attacked, all in one batch (default 32)")
    p.add_argument("--iterations", type=int, default=1000, help="Adam / line-search iterations (paper: 1000)")
    p.add_argument("--steps", type=int, default=5, help="binary search steps for c (paper: 5)")
    p.add_argument("--confidence", type=float, default=200.0, help="kappa (paper: 200)")
    p.add_argument("--c-min", type=float, default=1e2, help="paper: 1e2")
    p.add_argument("--c-max", type=float, default=1e4, help="paper: 1e4")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (paper: 0.01)")
    p.add_argument("--impl", action="append", default=None, help="implementations (default native, foolbox, art)")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--checkpoint", default=None, help="a bench checkpoint to attack instead of training one")
    p.add_argument("--train-n", type=int, default=1024, help="synthetic training images (default 1024)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (paper recipe: 5)")
    p.add_argument("--cache", default=os.path.join(os.environ.get("BENCH_CACHE", ".cache/bench"), "benchmarks"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run everything this often, rotating the order, and time "
        "each implementation by its fastest run (the machine may be shared; default 1)",
    )
    p.add_argument("--json", default=None, help="write the numbers here")
    return p.parse_args(argv)


def get_detector(args: argparse.Namespace, device: torch.device) -> tuple[Detector, str]:
    if args.checkpoint:
        return load_saved_detector(Path(args.checkpoint)).to(device).eval(), args.checkpoint
    imgs, labels, ids = generate_synthetic_faces(args.train_n, args.size, args.seed)
    data_hash = hashlib.sha1(imgs.tobytes()).hexdigest()[:10]  # the generator may change between versions
    path = (
        Path(args.cache)
        / f"{args.model}-{args.size}-synth{args.train_n}-{data_hash}-e{args.epochs}-s{args.seed}.safetensors"
    )
    if path.is_file():
        return load_saved_detector(path).to(device).eval(), str(path)
    torch.manual_seed(args.seed)
    det = create_model(args.model, args.size).to(device)
    t0 = time.perf_counter()
    train = ImageSet.from_uint8(imgs, labels, ids)
    losses = train_detector(det, train, Recipe(epochs=args.epochs), args.seed, quiet=not sys.stderr.isatty())
    print(f"trained {args.model} in {time.perf_counter() - t0:.0f} s, epoch losses {[round(v, 3) for v in losses]}")
    save_detector(det, path, meta={"train_n": args.train_n, "epochs": args.epochs, "seed": args.seed})
    return det.eval(), str(path)


def held_out_correct(det: Detector, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The first `n` held-out synthetic faces (after the training ones) the detector gets right."""
    extra = max(4 * args.n, 64)
    imgs, labels, ids = generate_synthetic_faces(args.train_n + extra, args.size, args.seed)
    test = ImageSet.from_uint8(imgs[args.train_n :], labels[args.train_n :], ids[args.train_n :])
    pred = det.predict_proba(test.images).argmax(1)
    correct = torch.nonzero(pred == test.labels).flatten()
    acc = float((pred == test.labels).float().mean())
    if len(correct) < args.n:
        print(f"warning: only {len(correct)} of {len(test)} held-out images are classified correctly")
    idx = correct[: args.n]
    return test.images[idx], test.labels[idx], acc


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {load:.1f} at the start"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    impls = args.impl or ["native", "foolbox", "art"]
    params = CWL2Params(
        confidence=args.confidence,
        c_min=args.c_min,
        c_max=args.c_max,
        binary_search_steps=args.steps,
        max_iterations=args.iterations,
        learning_rate=args.lr,
        abort_early=True,
    )
    det, source = get_detector(args, device)
    x, y, acc = held_out_correct(det, args)
    info = machine() + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
    print(f"machine: {info}")
    print(f"detector: {args.model} at {args.size}x{args.size} from {source}; held-out accuracy {acc:.3f}")
    print(f"{len(x)} images in one batch for every implementation; {params.model_dump()}")
    t0 = time.perf_counter()
    report = crosscheck(det, x, y, "cw_l2", params, impls, Tolerances(), seed=args.seed)
    seconds = {r.name: [r.seconds] for r in report.results if r.ok}
    for r in range(1, args.repeat):  # same attacks again, another order: only the timings are new
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        again = crosscheck(det, x, y, "cw_l2", params, order, Tolerances(), seed=args.seed)
        for res in again.results:
            if res.ok and res.name in seconds:
                seconds[res.name].append(res.seconds)
    for res in report.results:
        if res.name in seconds:
            res.seconds = min(seconds[res.name])
    print(report.to_text())
    if args.repeat > 1:
        print("seconds per run (the fastest is used):")
        for name, runs in seconds.items():
            print(f"  {name}: {', '.join(f'{v:.1f}' for v in runs)}")
    n = report.n
    by = {r.name: r for r in report.results if r.ok}
    rows = []
    if "native" in by:
        nat = by["native"].summary(n)
        for ref, target in TARGETS.items():
            if ref in by:
                other = by[ref].summary(n)
                ratio = other["seconds_per_image"] / nat["seconds_per_image"]
                rows.append((ref, ratio, target))
                print(
                    f"throughput native / {ref}: {ratio:.2f}x (target >= {target}x: "
                    f"{'PASS' if ratio >= target else 'FAIL'}); seconds per image {nat['seconds_per_image']:.3f} vs "
                    f"{other['seconds_per_image']:.3f}; passes per image fwd/bwd {nat['forward_per_image']:.0f}/"
                    f"{nat['backward_per_image']:.0f} vs {other['forward_per_image']:.0f}/"
                    f"{other['backward_per_image']:.0f}"
                )
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        out = {
            "machine": info,
            "detector": source,
            "n": n,
            "params": params.model_dump(),
            "reachable_margin": report.reachable_margin,
            "per_image": {
                r.name: {"success": r.success.tolist(), "l2": r.l2.tolist(), "linf": r.linf.tolist()}
                for r in report.results
                if r.ok
            },
            "seconds": seconds,
            "ratios": [{"reference": r, "throughput_ratio": v, "target": t} for r, v, t in rows],
            "records": crosscheck_records(report),
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    ok = report.verdict_ok and all(v >= t for _, v, t in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
