"""Lipschitz regularisation (paper section IV, eq. 7), by double backpropagation.

    J_aug(x, y) = J(x, y) + lambda / (C N) * sum_{i=1..C} ||grad_x Z_i(x)||_2^2

Z are the logits, C the number of classes and N the input dimension (3 H W); the gradient is taken
with respect to the [0, 1] image, the space attacks perturb. Over a batch of B images the term is
averaged like the cross-entropy: lambda / (C N B) * sum_b sum_i ||grad_{x_b} Z_i(x_b)||^2.

Cost: one backward pass per class (C = 2) of the batch-summed logit, with `create_graph=True`, then
the usual backward runs through those graphs (double backprop). Summing over the batch gives each
image's own gradient because images do not interact, which holds exactly in eval mode; a network
with BatchNorm in train mode couples the images of a batch through the batch statistics, so its
per-image gradient also carries the (O(1/B)) path through the batch mean and variance. This is the
gradient of the function the network computes in training, and getting rid of the coupling would
cost B backward passes per class.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.defenses.base import TrainingDefense
from bench.defenses.builtin_params import check_lambda, lipschitz_params
from bench.models.detector import Detector


def logit_gradient_penalty(logits: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """sum_i ||grad_x Z_i||^2 / (C N), averaged over the batch; `x` must require grad and be the
    tensor `logits` were computed from."""
    n_classes = logits.shape[1]
    n_inputs = x[0].numel()
    total = logits.new_zeros(())
    for i in range(n_classes):
        (g,) = torch.autograd.grad(logits[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        total = total + g.pow(2).sum()
    return total / (n_classes * n_inputs * x.shape[0])


class LipschitzRegularisation(TrainingDefense):
    """Adds lambda / (C N) * sum_i ||grad_x Z_i(x)||^2 (batch mean) to the training loss.

    Suite: `defense: {lipschitz: {lambda: 50}}`; the paper's grid is lambda in {5, 50, 500, 5000}.
    lambda = 0 is plain training (no input gradients are taken).
    """

    name = "lipschitz"

    def __init__(self, lam: float = 50.0) -> None:
        self.lam = check_lambda(lam, self.name)
        self.last_penalty: float | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> LipschitzRegularisation:
        """Suite parameters: `lambda` (alias `lam`)."""
        return cls(**lipschitz_params(params, cls.name))

    def needs_input_grad(self) -> bool:
        return self.lam > 0

    def extra_loss(
        self, detector: Detector, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor | None:
        if self.lam == 0:
            return None
        penalty = logit_gradient_penalty(logits, x, create_graph=True)
        self.last_penalty = float(penalty.detach())
        return self.lam * penalty

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "lambda": self.lam}

    def __repr__(self) -> str:
        return f"LipschitzRegularisation(lam={self.lam:g})"
