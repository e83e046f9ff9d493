"""Contract checks on what defenses return; a violation raises `ContractError` naming the defense."""

from __future__ import annotations

import torch

from bench.errors import ContractError

# Images live in [0, 1]; this much float rounding outside the interval is tolerated.
RANGE_TOLERANCE = 1e-5


def check_image_batch(name: str, x: torch.Tensor, out: object, what: str = "output") -> torch.Tensor:
    """`out` must be a float tensor of `x`'s shape, finite, with values in [0, 1]."""
    if not isinstance(out, torch.Tensor):
        raise ContractError(name, f"{what} must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(x.shape):
        raise ContractError(name, f"{what} has shape {tuple(out.shape)}, expected the input's {tuple(x.shape)}")
    if not out.is_floating_point():
        raise ContractError(name, f"{what} must be a float tensor, got {out.dtype}")
    o = out.detach()
    if not bool(torch.isfinite(o).all()):
        bad = int((~torch.isfinite(o)).sum())
        raise ContractError(name, f"{what} contains {bad} NaN or infinite values")
    if o.numel() == 0:
        return out
    lo, hi = float(o.min()), float(o.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise ContractError(name, f"{what} values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return out


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
