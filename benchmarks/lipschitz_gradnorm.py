"""How Lipschitz regularisation changes a model's input-gradient norm (eq. 7 and `bench.models.diagnostics`).

Trains the same architecture from the same initial weights and data order with several lambdas,
and reports for each the test accuracy and the mean ||dZ/dx||_F over the test images. The default
data is easy (noise images whose class is a colour cast); `--data synthetic-faces` gives the harder
procedural faces, which the tiny CNN does not learn in a few epochs.

    python benchmarks/lipschitz_gradnorm.py --lambdas 0 50 5000 [--data easy --arch tiny --size 32]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.data.dataset import ImageSet
from bench.data.synthetic import generate_synthetic_faces
from bench.defenses.lipschitz import LipschitzRegularisation
from bench.models import create_model
from bench.models.device import resolve_device
from bench.models.diagnostics import input_gradient_norm
from bench.models.training import Recipe, train_detector


def easy_set(n: int, size: int, seed: int) -> ImageSet:
    """Noise images whose class is a colour cast (fake: redder, real: bluer) of 0.05 in [0, 1] units."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(n, generator=g) % 2
    x = 0.5 + 0.15 * torch.randn(n, 3, size, size, generator=g)
    cast = torch.tensor([0.05, 0.0, -0.05]).view(1, 3, 1, 1)
    x = x + torch.where(labels.view(-1, 1, 1, 1) == 0, cast, -cast)
    return ImageSet(x.clamp(0, 1), labels, [f"easy-{i}" for i in range(n)])


def load(data: str, n: int, size: int, seed: int) -> ImageSet:
    if data == "easy":
        return easy_set(n, size, seed)
    return ImageSet.from_uint8(*generate_synthetic_faces(n, size=size, seed=seed))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["easy", "synthetic-faces"], default="easy")
    ap.add_argument("--arch", default="tiny")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 50.0, 5000.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU); default: torch's")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    train = load(args.data, args.n_train, args.size, args.seed)
    test = load(args.data, args.n_test, args.size, args.seed + 1000)
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
