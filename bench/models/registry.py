"""Model registry and the one factory, `create_model` (in the style of timm)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bench.models import architectures
from bench.models.detector import Detector, ModelSpec
from bench.registry import Registry

ModelBuilder = Callable[..., nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model")


def register_model(name: str, builder: ModelBuilder | None = None):
    """Register an architecture builder `builder(num_classes=2, pretrained=False) -> nn.Module`; without
    `builder`, a decorator."""
    return MODELS.register(name, builder)


def list_models() -> list[str]:
    return MODELS.names()


def create_model(
    arch: str,
    input_size: int = 64,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    pretrained: bool = False,
    where: str = "model",
) -> Detector:
    """Build a `Detector` (untrained unless `pretrained`) for a registered architecture."""
    builder = MODELS.get(arch, f"{where}.arch")
    spec = ModelSpec(arch=arch, input_size=input_size, mean=tuple(mean), std=tuple(std))
    return Detector(builder(num_classes=2, pretrained=pretrained), spec)


register_model("vgg16", architectures.vgg16)
register_model("vgg16_bn", architectures.vgg16_bn)
register_model("resnet18", architectures.resnet18)
register_model("tiny", architectures.tiny_cnn)
