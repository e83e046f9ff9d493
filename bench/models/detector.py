"""The detector: a classifier network whose normalisation travels with its weights.

Inputs are float32 NCHW images in [0, 1]; outputs are 2 logits (index 0 = fake, 1 = real).
`Detector.net` is the bare network (expects normalised input); `Detector` itself normalises,
so native attacks and training see [0, 1] inputs, while ART and Foolbox receive the bare
network plus the normalisation as their own preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bench.errors import BenchError


@dataclass(frozen=True)
class ModelSpec:
    """What travels with a model's weights: architecture name, input size and normalisation."""

    arch: str
    input_size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    num_classes: int = 2
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "num_classes": self.num_classes,
        }


class Detector(nn.Module):
    """Normalisation followed by the bare network; takes [0, 1] images, returns logits."""

    def __init__(self, net: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device  # a buffer every detector has (a TorchScript network may have no parameters)

    @property
    def name(self) -> str:
        """The name errors use: the suite's model name when the runner set it, else the architecture."""
        return getattr(self, "_name", None) or self.spec.arch

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """Softmax probabilities, evaluated in eval mode in batches, on the detector's device."""
        was_training = self.training
        self.eval()
        out = []
        dev = self.device
        for i in range(0, len(x), batch_size):
            out.append(torch.softmax(self(x[i : i + batch_size].to(dev).float()), dim=1).cpu())
        self.train(was_training)
        proba = torch.cat(out) if out else torch.empty(0, self.spec.num_classes)
        bad = ~torch.isfinite(proba).all(dim=1)
        if bool(bad.any()):
            raise BenchError(f"models.{self.name}", f"the detector gave non-finite scores (NaN or inf) for "
                             f"{int(bad.sum())} of {len(proba)} images; its weights are broken (nothing was stored)")
        return proba
