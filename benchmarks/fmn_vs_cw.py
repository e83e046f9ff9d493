"""Native FMN-L2 against Foolbox's CW-L2 on a trained ResNet-18 at 64 x 64: perturbation size and cost.

The claim checked: native FMN reaches a median L2 no larger than Foolbox's CW-L2 (kappa 0, c searched in
[0.01, 100]: Foolbox starts at c = 0.01 and multiplies by 10 until an image succeeds, then bisects; 5 search
steps of 1,000 Adam iterations at learning rate 0.01, early abort on) with at least 10 times fewer forward
plus backward passes per image. Passes are counted on the network (`bench.attacks.counting`), so the
ratio holds on any machine; seconds per image depend on the machine (and on its load: say so).

Median L2 is over all attacked images with a failure counting as infinitely large (the security-evaluation
view), and also over the images both attacks broke. The detector is the one `cw_speed.py` trains (same
recipe and cache), the images are held-out synthetic faces it classifies correctly.

    OMP_NUM_THREADS=1 python benchmarks/fmn_vs_cw.py --n 8 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from bench.attacks.counting import count_passes
from bench.attacks.params import CWL2Params, DDNParams, FMNParams
from bench.attacks.registry import run_attack
from bench.models.device import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's detector and images
from cw_speed import get_detector, held_out_correct, machine  # noqa: E402

PASS_RATIO = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16, help="images attacked, in one batch (default 16)")
    p.add_argument("--fmn-steps", type=int, default=100, help="FMN iterations (default 100)")
    p.add_argument("--fmn-max-stepsize", type=float, default=1.0)
    p.add_argument("--fmn-gamma", type=float, default=0.05)
    p.add_argument("--cw-steps", type=int, default=5, help="CW binary search steps (default 5)")
    p.add_argument("--cw-iterations", type=int, default=1000, help="CW iterations per step (default 1000)")
    p.add_argument("--c-min", type=float, default=0.01)
    p.add_argument("--c-max", type=float, default=100.0)
    p.add_argument("--lr", type=float, default=0.01, help="CW learning rate (default 0.01)")
    p.add_argument("--extra", action="store_true", help="also run native CW-L2, Foolbox FMN and native DDN")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--checkpoint", default=None, help="a bench checkpoint to attack instead of training one")
    p.add_argument("--train-n", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--cache", default=os.path.join(os.environ.get("BENCH_CACHE", ".cache/bench"), "benchmarks"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", default=None, help="write the numbers here")
    return p.parse_args(argv)


def run(name: str, attack: str, backend: str, det, x: torch.Tensor, y: torch.Tensor, params, seed: int) -> dict:
    torch.manual_seed(seed)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with count_passes(det) as passes:
        adv = run_attack(attack, backend, det, x, y, params)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    success = det.predict_proba(adv).argmax(1).cpu() != y.cpu()
    l2 = (adv.cpu() - x.cpu()).flatten(1).double().norm(dim=1)
    n = len(x)
    dist = torch.where(success, l2, torch.full_like(l2, math.inf))
    return {"name": name, "success": success.tolist(), "l2": l2.tolist(), "distance": dist.tolist(),
            "success_rate": float(success.float().mean()), "median_l2_all": float(dist.median()),
            "forward_per_image": passes.forward / n, "backward_per_image": passes.backward / n,
            "passes_per_image": (passes.forward + passes.backward) / n, "seconds_per_image": seconds / n}


def median_both(a: dict, b: dict) -> tuple[float, float, int]:
    both = torch.tensor(a["success"]) & torch.tensor(b["success"])
    if not bool(both.any()):
        return math.nan, math.nan, 0
    return (float(torch.tensor(a["l2"])[both].median()), float(torch.tensor(b["l2"])[both].median()),
            int(both.sum()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    det, source = get_detector(args, device)
    x, y, acc = held_out_correct(det, args)
    x, y = x.to(device), y.to(device)
    info = machine() + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
    fmn = FMNParams(steps=args.fmn_steps, max_stepsize=args.fmn_max_stepsize, min_stepsize=args.fmn_max_stepsize / 100,
                    gamma=args.fmn_gamma)
    cw = CWL2Params(confidence=0.0, c_min=args.c_min, c_max=args.c_max, binary_search_steps=args.cw_steps,
                    max_iterations=args.cw_iterations, learning_rate=args.lr, abort_early=True)
    print(f"machine: {info}")
    print(f"detector: {args.model} at {args.size}x{args.size} from {source}; held-out accuracy {acc:.3f}")
    print(f"{len(x)} images in one batch; FMN {fmn.model_dump()}; CW-L2 {cw.model_dump()}")
    t0 = time.perf_counter()
    rows = [run("native FMN", "fmn", "native", det, x, y, fmn, args.seed),
            run("Foolbox CW-L2", "cw_l2", "foolbox", det, x, y, cw, args.seed)]
    if args.extra:
        rows += [run("native CW-L2", "cw_l2", "native", det, x, y, cw, args.seed),
                 run("Foolbox FMN", "fmn", "foolbox", det, x, y, fmn, args.seed),
                 run("native DDN", "ddn", "native", det, x, y,
                     DDNParams(steps=args.fmn_steps, init_epsilon=1.0, gamma=0.05), args.seed)]
    print(f"{'attack':15s} {'success':>8s} {'median L2 (all)':>16s} {'fwd/img':>9s} {'bwd/img':>9s} "
          f"{'passes/img':>11s} {'s/img':>8s}")
    for r in rows:
        print(f"{r['name']:15s} {r['success_rate']:8.3f} {r['median_l2_all']:16.4f} {r['forward_per_image']:9.1f} "
              f"{r['backward_per_image']:9.1f} {r['passes_per_image']:11.1f} {r['seconds_per_image']:8.3f}")
    fm, cwr = rows[0], rows[1]
    m_fmn, m_cw, k = median_both(fm, cwr)
    ratio = cwr["passes_per_image"] / fm["passes_per_image"]
    l2_ok = fm["median_l2_all"] <= cwr["median_l2_all"]
    print(f"median L2 over the {k} images both broke: native FMN {m_fmn:.4f}, Foolbox CW-L2 {m_cw:.4f}")
    print(f"median L2 (all images, failures infinite): FMN {fm['median_l2_all']:.4f} <= CW {cwr['median_l2_all']:.4f}: "
          f"{'PASS' if l2_ok else 'FAIL'}")
    print(f"passes per image, CW / FMN: {ratio:.1f}x (target >= {PASS_RATIO:g}x: "
          f"{'PASS' if ratio >= PASS_RATIO else 'FAIL'})")
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "machine": info, "detector": source, "n": len(x), "fmn": fmn.model_dump(), "cw": cw.model_dump(),
            "rows": rows, "median_l2_both": {"fmn": m_fmn, "cw": m_cw, "n_both": k}, "pass_ratio": ratio,
        }, indent=1) + "\n")
    return 0 if l2_ok and ratio >= PASS_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
