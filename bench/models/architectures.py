"""Built-in architectures: torchvision VGG-16 and ResNet-18 with a 2-logit head, and a tiny CNN for tests."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from bench.errors import BenchError


def _pretrained_weights(name: str, enum):  # pragma: no cover - depends on network access
    """ImageNet weights if torchvision can load them offline, else a clear error."""
    try:
        weights = enum.IMAGENET1K_V1
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - any download failure means "not available offline"
        raise BenchError(
            f"models.{name}.pretrained",
            "ImageNet weights are not in the torch hub cache and cannot be downloaded here "
            f"({type(exc).__name__}); set pretrained: false or place the file in $TORCH_HOME/hub/checkpoints",
        ) from exc


def _vgg(builder, weights_enum, name: str, num_classes: int, pretrained: bool) -> nn.Module:
    net = builder(weights=None)
    if pretrained:
        net.load_state_dict(_pretrained_weights(name, weights_enum))
    net.classifier[6] = nn.Linear(net.classifier[6].in_features, num_classes)
    return net


def vgg16(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """VGG-16 (no batch norm) with its last classifier layer replaced by a `num_classes` head."""
    return _vgg(tvm.vgg16, tvm.VGG16_Weights, "vgg16", num_classes, pretrained)


def vgg16_bn(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """VGG-16 with batch norm after each convolution (torchvision `vgg16_bn`), `num_classes` head.

    The variant that trains from scratch: plain VGG-16 needs ImageNet weights to learn in the paper's
    5 epochs at lr 1e-3 (from scratch it stays at chance on the synthetic faces)."""
    return _vgg(tvm.vgg16_bn, tvm.VGG16_BN_Weights, "vgg16_bn", num_classes, pretrained)


def resnet18(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """ResNet-18 with its fully connected layer replaced by a `num_classes` head."""
    net = tvm.resnet18(weights=None)
    if pretrained:
        net.load_state_dict(_pretrained_weights("resnet18", tvm.ResNet18_Weights))
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def tiny_cnn(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """A small CNN (about 25k parameters, batch norm after each convolution) for fast tests; any input size."""
    if pretrained:
        raise BenchError("models.tiny.pretrained", "the tiny CNN has no pretrained weights")
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
