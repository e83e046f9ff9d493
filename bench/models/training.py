"""Training a detector by its recipe (the paper's: SGD lr 1e-3, momentum 0.9, StepLR(7, 0.1), 5 epochs, batch 16)."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from bench.data.dataset import ImageSet
from bench.defenses.base import TrainingDefense
from bench.errors import BenchError
from bench.models.detector import Detector
from bench.models.recipe import Recipe

__all__ = ["Recipe", "train_detector"]


def train_detector(
    detector: Detector,
    train: ImageSet,
    recipe: Recipe,
    seed: int = 0,
    defense: TrainingDefense | None = None,
    quiet: bool = False,
    desc: str = "train",
    where: str | None = None,
) -> list[float]:
    """Train in place, deterministically from `seed`; returns the mean loss of each epoch.

    A non-finite loss (NaN or inf: a learning rate too large, a defense's penalty overflowing) stops training
    with a `BenchError` naming `where` (default: `desc`); nothing is saved.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = detector.device
    opt = torch.optim.SGD(
        detector.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=recipe.step_size, gamma=recipe.gamma)
    losses: list[float] = []
    n = len(train)
    steps = (n + recipe.batch_size - 1) // recipe.batch_size
    bar = tqdm(total=recipe.epochs * steps, desc=desc, disable=quiet, leave=False)
    detector.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            x = train.images[idx]
            y = train.labels[idx]
            if defense is not None:
                x = defense.augment(x, y, gen)
            x, y = x.to(device), y.to(device)
            if defense is not None and defense.needs_input_grad():
                x.requires_grad_(True)
            logits = detector(x)
            loss = F.cross_entropy(logits, y)
            if defense is not None:
                extra = defense.extra_loss(detector, x, y, logits)
                if extra is not None:
                    loss = loss + extra
            if not torch.isfinite(loss.detach()).all():
                bar.close()
                raise BenchError(where or desc, f"training loss became {float(loss.detach())} at epoch {epoch + 1}, "
                                 f"batch {i // recipe.batch_size + 1}; lower recipe.lr (now {recipe.lr:g}) or the "
                                 "defense's strength. Nothing was saved")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        sched.step()
        losses.append(total / n)
    bar.close()
    detector.eval()
    bad = [k for k, v in detector.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise BenchError(where or desc, f"training left non-finite weights ({bad[0]}); lower recipe.lr. "
                         "Nothing was saved")
    return losses
