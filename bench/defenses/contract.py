"""The defense contract, one module for runs, tests and docs: checks on what each kind returns, and
`check_defense(defense, detector, images)`, which runs a defense of any kind once on a small batch and
raises `ContractError` naming it when it breaks its contract (`bench run` does this at preflight):

- training: `augment` keeps the shape and [0, 1]; `extra_loss` is None or a finite scalar;
- preprocessor: same shape, finite, [0, 1]; if it claims `differentiable`, its output is connected to
  the input's autograd graph (otherwise it must declare `differentiable = False`, for BPDA);
- wrapper: `wrap` returns a `Detector` whose logits are finite and N x num_classes.
"""

from __future__ import annotations

import torch

from bench.defenses.base import TrainingDefense, defense_kinds
from bench.errors import ContractError
from bench.models.detector import Detector
from bench.plugins.image_contract import check_images


def check_image_batch(name: str, x: torch.Tensor, out: object, what: str = "output") -> torch.Tensor:
    """`out` (the defense's `what`) must be a float tensor of `x`'s shape, finite, with values in [0, 1]."""
    return check_images(name, x, out, f"{what} have")


def check_preprocessor_output(name: str, x: torch.Tensor, out: object) -> torch.Tensor:
    """A preprocessor's output: same shape as its input, finite, in [0, 1]."""
    return check_image_batch(name, x, out, "preprocessed images")


def check_logits(name: str, x: torch.Tensor, logits: object, num_classes: int) -> torch.Tensor:
    """A (wrapped) detector's output: finite logits of shape N x num_classes."""
    if not isinstance(logits, torch.Tensor):
        raise ContractError(name, f"the detector must return a torch.Tensor, got {type(logits).__name__}")
    expected = (x.shape[0], num_classes)
    if tuple(logits.shape) != expected:
        raise ContractError(name, f"the detector returned logits of shape {tuple(logits.shape)}, expected {expected}")
    if not bool(torch.isfinite(logits.detach()).all()):
        raise ContractError(name, "the detector returned NaN or infinite logits")
    return logits


def check_extra_loss(name: str, loss: object) -> torch.Tensor | None:
    """A training defense's extra loss: None or a finite scalar tensor."""
    if loss is None:
        return None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ContractError(name, f"extra_loss must return a scalar tensor or None, got {shape}")
    if not bool(torch.isfinite(loss.detach()).all()):
        raise ContractError(name, "extra_loss returned NaN or inf")
    return loss


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
    defense: object, detector: Detector, images: torch.Tensor, labels: torch.Tensor | None = None,
    kind: str | None = None,
) -> None:
    """Run the defense once on `images` (a few [0, 1] images) and check its contract (see module doc), as
    `kind` (default: its first kind; a defense of two kinds, such as smoothing, is checked as the one asked).

    The detector is put in eval mode and not changed (no optimiser step, no BatchNorm update).
    """
    name = _name(defense)
    kinds = defense_kinds(defense)
    if kind is not None and kind not in kinds:
        raise ContractError(name, f"is a {' and '.join(kinds)} defense, not a {kind} defense")
    kind = kind or kinds[0]
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
