"""Model diagnostics: the input-gradient norm of the logits (the quantity eq. 7 regularises), and how
large a logit margin an attacker can reach at all (what decides whether a CW-L2 confidence is attainable).

For an image x with logits Z(x) in R^C, the diagnostic is the Frobenius norm of the logit Jacobian
with respect to the [0, 1] image (the space attacks perturb):

    G(x) = ||dZ/dx||_F = sqrt( sum_{i=1..C} ||grad_x Z_i(x)||_2^2 ),

and the model's figure is its mean over the test images. It ties directly to the regulariser: the
Lipschitz penalty of an image is lambda / (C N) * G(x)^2. Computed in eval mode (BatchNorm uses its
running statistics, so each image's gradient is its own), one backward pass per class of the
batch-summed logit.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.attacks.native import true_and_other_logits
from bench.data.dataset import ImageSet
from bench.models.detector import Detector


def input_gradient_norm(
    detector: Detector, images: torch.Tensor | ImageSet, batch_size: int = 64
) -> tuple[float, np.ndarray]:
    """(mean over images, per-image array) of ||dZ/dx||_F; the detector is left in eval mode."""
    x_all = images.images if isinstance(images, ImageSet) else images
    if len(x_all) == 0:
        return float("nan"), np.zeros(0, dtype=np.float64)
    detector.eval()
    device = detector.device
    norms: list[np.ndarray] = []
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size].to(device=device, dtype=torch.float32).requires_grad_(True)
        with torch.enable_grad():
            logits = detector(x)
            sq = torch.zeros(len(x), dtype=torch.float64, device=device)
            for c in range(logits.shape[1]):
                (g,) = torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c + 1 < logits.shape[1])
                sq += g.flatten(1).double().pow(2).sum(dim=1)
        norms.append(sq.sqrt().cpu().numpy())
    per_image = np.concatenate(norms)
    return float(per_image.mean()), per_image


REACH_STEPS, REACH_STEP = 200, 0.05  # the margin probe: 200 x 0.05 is ten widths of the box


def reachable_margin(
    detector: Detector, x: torch.Tensor, y: torch.Tensor, steps: int = REACH_STEPS, step_size: float = REACH_STEP
) -> torch.Tensor:
    """Per image, the largest margin max_{i != y} Z_i - Z_y seen while a margin-maximising PGD walks the
    whole [0, 1] box (no norm bound): `steps` sign-gradient steps of `step_size` from x.

    A lower bound on the largest margin any attack can reach. CW-L2 with confidence kappa can only
    succeed where kappa is reachable; where this stays below kappa, CW returns the image unperturbed.
    """
    detector.eval()
    dev = detector.device
    xa, y = x.to(dev, torch.float32), y.to(dev, torch.int64)
    best = torch.full((len(xa),), -torch.inf, device=dev)
    for step in range(steps + 1):
        xg = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            z_true, z_other = true_and_other_logits(detector(xg), y)
            margin = z_other - z_true
            (g,) = torch.autograd.grad(margin.sum(), xg)
        best = torch.maximum(best, margin.detach())
        if step < steps:
            xa = (xa + step_size * g.sign()).clamp(0.0, 1.0)
    return best.cpu()
