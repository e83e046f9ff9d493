"""Exercising any defense's contract on a small batch, before a run relies on it.

`check_defense(defense, detector, images)` runs a defense of any kind once and raises
`ContractError` naming it (`where` = the defense's `name`) when it breaks its contract, so a broken
plug-in fails fast with a clear message rather than deep inside an attack:

- training: `augment` keeps the shape and [0, 1]; `extra_loss` is None or a finite scalar;
- preprocessor: same shape, finite, [0, 1]; if it claims `differentiable`, its output is connected to
  the input's autograd graph (otherwise it must declare `differentiable = False`, for BPDA);
- wrapper: `wrap` returns a `Detector` whose logits are finite and N x num_classes.
"""

from __future__ import annotations

import torch

from bench.defenses.base import TrainingDefense
from bench.defenses.contract import check_extra_loss, check_image_batch, check_logits, check_preprocessor_output
from bench.defenses.registry import defense_kind
from bench.errors import ContractError
from bench.models.detector import Detector


def _name(defense: object) -> str:
    return str(getattr(defense, "name", type(defense).__name__))


def wrap_detector(defense: object, detector: Detector, images: torch.Tensor | None = None) -> Detector:
    """`defense.wrap(detector)`, checked: a `Detector`, and (given `images`) finite N x C logits."""
    name = _name(defense)
    try:
        wrapped = defense.wrap(detector)
    except ContractError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report, naming the defense
        raise ContractError(name, f"wrap(detector) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(wrapped, Detector):
        raise ContractError(
            name,
            f"wrap(detector) must return a bench Detector, got {type(wrapped).__name__} "
            "(bench.defenses.base.as_detector(module, like=detector) builds one)",
        )
    if images is not None:
        with torch.no_grad():
            x = images.to(wrapped.device)
            check_logits(name, x, wrapped(x), detector.spec.num_classes)
    return wrapped


def check_defense(
    defense: object, detector: Detector, images: torch.Tensor, labels: torch.Tensor | None = None
) -> None:
    """Run the defense once on `images` (a few [0, 1] images) and check its contract (see module doc).

    The detector is put in eval mode and not changed (no optimiser step, no BatchNorm update).
    """
    name = _name(defense)
    kind = defense_kind(defense)
    images = images.detach().float()
    detector.eval()
    try:
        if kind == "training":
            _check_training(name, defense, detector, images, labels)
        elif kind == "preprocessor":
            _check_preprocessor(name, defense, images)
        else:
            wrap_detector(defense, detector, images)
    except ContractError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report, naming the defense
        raise ContractError(name, f"{kind} defense raised {type(exc).__name__}: {exc}") from exc


def _check_training(
    name: str, defense: TrainingDefense, detector: Detector, x: torch.Tensor, y: torch.Tensor | None
) -> None:
    y = torch.zeros(len(x), dtype=torch.int64) if y is None else y
    out = defense.augment(x.clone(), y, torch.Generator().manual_seed(0))
    check_image_batch(name, x, out, "augmented images")
    xd = out.detach().to(detector.device)
    if defense.needs_input_grad():
        xd.requires_grad_(True)
    logits = detector(xd)
    check_extra_loss(name, defense.extra_loss(detector, xd, y.to(detector.device), logits))


def _check_preprocessor(name: str, defense: object, x: torch.Tensor) -> None:
    dev = getattr(defense, "device", x.device)
    xg = x.to(dev).clone().requires_grad_(True)
    out, _ = defense.forward(xg, None)
    check_preprocessor_output(name, xg, out)
    if getattr(defense, "differentiable", True) and hasattr(defense, "transform") and not out.requires_grad:
        raise ContractError(
            name,
            "declares differentiable = True but its output is not connected to the input's autograd "
            "graph (numpy, PIL or .detach() inside?); set differentiable = False to use the BPDA gradient",
        )
