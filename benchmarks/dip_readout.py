"""Where along the DIP iterations purification works: accuracy, PSNR and surviving perturbation per iteration.

Trains ResNet-18 (the paper's DIP classifier) on synthetic faces, takes `--per-category` test images
of each of three categories (as the paper's Fig. 6): FGSM fakes the detector calls real (whitebox,
eps 0.02 as the paper), unperturbed fakes and unperturbed reals it classifies correctly, purifies them
all with DIP while recording P(real) every `--every` iterations, and prints per iteration:

- the accuracy on each category (P(real) >= 0.5 means real) and on all of them;
- the mean PSNR of the purified clean images against themselves, and of the purified FGSM images
  against their clean originals;
- the fraction of the FGSM perturbation that survives: <y - x, d> / <d, d> for the purified image y of
  x + d (1: all of it, 0: none).

It ends with the iteration of best overall accuracy (ties to the earlier), and draws Fig. 6 (one image
per category) to `--figure`. The detector recipe (SGD lr 0.01, 6 epochs, step 4, 2,000 images) is the
one that trained well here on synthetic faces, not the paper's; checkpoints are cached in `--cache`.

    python benchmarks/dip_readout.py --size 32 --iterations 1000 --every 25 [--lr 0.01] [--threads 1]
        [--figure dip_fig6.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.dip.config import DIPConfig
from bench.dip.engine import psnr, purify
from bench.dip.figure import plot_trajectories
from bench.dip.readout import pick_readout
from bench.models import create_model
from bench.models.training import Recipe, train_detector


def trained_detector(size: int, cache: Path, quiet: bool = True):
    from safetensors.torch import load_file, save_file

    images, labels, ids = generate_synthetic_faces(2400, size=size, seed=0)
    data = ImageSet.from_uint8(images, labels, ids)
    train, test = data.subset(range(2000)), data.subset(range(2000, 2400))
    det = create_model("resnet18", input_size=size)
    path = cache / f"dip-readout-resnet18-{size}.safetensors"
    if path.exists():
        det.load_state_dict(load_file(str(path)))
    else:
        train_detector(det, train, Recipe(epochs=6, lr=0.01, step_size=4, batch_size=16), seed=0, quiet=quiet)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(det.state_dict(), str(path))
    return det.eval(), test


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--per-category", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--eps", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cache", default=".cache/bench/benchmarks")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    det, test = trained_detector(args.size, Path(args.cache))
    pred = det.predict_proba(test.images).argmax(1)
    ok = pred == test.labels
    print(f"detector: clean test accuracy {float(ok.float().mean()):.3f} on {len(test)} images")
    fakes = torch.nonzero(ok & (test.labels == 0)).flatten()
    reals = torch.nonzero(ok & (test.labels == 1)).flatten()
    x = test.images[fakes].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(det(x), test.labels[fakes]), x)
    adv = (x + args.eps * g.sign()).clamp(0, 1).detach()
    fooled = det.predict_proba(adv).argmax(1) == 1
    print(f"FGSM eps {args.eps}: {int(fooled.sum())} of {len(fakes)} correct fakes now called real")
    k = args.per_category
    cats = {
        "perturbed (FGSM) fake-wrong": (adv[fooled][:k], test.images[fakes[fooled]][:k], 0),
        "unperturbed fake-correct": (test.images[fakes[:k]], test.images[fakes[:k]], 0),
        "unperturbed real-correct": (test.images[reals[:k]], test.images[reals[:k]], 1),
    }
    x_in = torch.cat([v[0] for v in cats.values()])
    x_clean = torch.cat([v[1] for v in cats.values()])
    y = np.concatenate([np.full(len(v[0]), v[2]) for v in cats.values()])
    sizes = [len(v[0]) for v in cats.values()]
    n_adv = sizes[0]
    cfg = DIPConfig(iterations=args.iterations, readout=args.iterations, lr=args.lr, batch_size=len(x_in))
    cands = list(range(args.every, args.iterations + 1, args.every))
    t0 = time.perf_counter()
    res = purify(x_in, cfg, args.seed, record_every=args.every, classifier=det, candidates=cands, quiet=False)
    took = time.perf_counter() - t0
    print(
        f"DIP: {len(x_in)} images x {args.iterations} iterations at {args.size} x {args.size} "
        f"({res.levels} levels) in {took:.0f} s, {took / len(x_in) / args.iterations * 1e3:.2f} ms per image-iteration"
    )
    delta = (x_in[:n_adv] - x_clean[:n_adv]).flatten(1)
    rows = []
    names = list(cats)
    print(f"{'iter':>5s} {'survives':>8s} " + " ".join(f"{n[:22]:>22s}" for n in names) + "  all  PSNR clean  PSNR adv")
    for j, t in enumerate(res.iterations.tolist()):
        correct = (res.p_real[:, j] >= 0.5).astype(int) == y
        accs = [float(c.mean()) for c in np.split(correct, np.cumsum(sizes)[:-1])]
        snap = res.snapshots[t]
        surv = ((snap[:n_adv] - x_clean[:n_adv]).flatten(1) * delta).sum(1) / (delta * delta).sum(1)
        ps = psnr(snap, x_clean)
        row = {
            "iteration": t,
            "accuracy": dict(zip(names, accs, strict=True)),
            "accuracy_all": float(correct.mean()),
            "psnr_clean": float(ps[n_adv:].mean()),
            "psnr_adversarial": float(ps[:n_adv].mean()),
            "perturbation_surviving": float(surv.mean()),
        }
        rows.append(row)
        print(
            f"{t:5d} {row['perturbation_surviving']:8.2f} "
            + " ".join(f"{a:22.2f}" for a in accs)
            + f" {row['accuracy_all']:4.2f} {row['psnr_clean']:11.1f} {row['psnr_adversarial']:9.1f}"
        )
    best = pick_readout({r["iteration"]: r["accuracy_all"] for r in rows})
    print(f"best overall accuracy at iteration {best}")
    if args.figure:
        first = np.cumsum([0] + sizes[:-1])
        traj = {n: res.p_real[i] for n, i in zip(names, first, strict=True)}
        plot_trajectories(traj, res.iterations, best, 0.5, Path(args.figure), title=f"DIP, {args.size} x {args.size}")
    out = {"args": vars(args), "rows": rows, "best": best, "seconds": took}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
