"""How Lipschitz regularisation changes a model's input-gradient norm (eq. 7 and `bench.diagnostics`).

Trains the same architecture from the same initial weights and data order with several lambdas on
the synthetic faces, and reports for each: test accuracy and the mean ||dZ/dx||_F over test images.

    python benchmarks/lipschitz_gradnorm.py --lambdas 0 50 5000 [--arch tiny --size 32 --n-train 512]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.defenses.lipschitz import LipschitzRegularisation
from bench.device import resolve_device
from bench.diagnostics import input_gradient_norm
from bench.models import create_model
from bench.models.training import Recipe, train_detector


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 50.0, 5000.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    train = ImageSet.from_uint8(*generate_synthetic_faces(args.n_train, size=args.size, seed=args.seed))
    test = ImageSet.from_uint8(*generate_synthetic_faces(args.n_test, size=args.size, seed=args.seed + 1000))
    recipe = Recipe(epochs=args.epochs, lr=args.lr, step_size=max(1, args.epochs))
    rows = []
    for lam in args.lambdas:
        torch.manual_seed(args.seed)
        det = create_model(args.arch, input_size=args.size).to(device)
        t0 = time.perf_counter()
        losses = train_detector(det, train, recipe, seed=args.seed, defense=LipschitzRegularisation(lam), quiet=True)
        secs = time.perf_counter() - t0
        prob = det.predict_proba(test.images)
        acc = float((prob.argmax(1) == test.labels).float().mean())
        mean, per_image = input_gradient_norm(det, test, batch_size=64)
        rows.append(
            {
                "lambda": lam,
                "test_accuracy": acc,
                "grad_norm_mean": mean,
                "grad_norm_median": float(sorted(per_image)[len(per_image) // 2]),
                "final_train_loss": losses[-1],
                "train_seconds": secs,
            }
        )
        print(
            f"lambda {lam:>7g}: accuracy {acc:.3f}  mean ||dZ/dx||_F {mean:.4f}  "
            f"final loss {losses[-1]:.4f}  ({secs:.1f} s)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
