"""What every plug-in that returns images must return (attacks, preprocessor and training defenses alike):
a floating-point torch tensor of the input's shape, finite, with values in [0, 1]. A violation raises
`ContractError` naming the plug-in and the images at fault."""

from __future__ import annotations

import torch

from bench.errors import ContractError

# Images live in [0, 1]; this much float rounding outside the interval is tolerated (and clipped by callers).
RANGE_TOLERANCE = 1e-5


def _which(mask: torch.Tensor, limit: int = 5) -> str:
    bad = torch.nonzero(mask.reshape(len(mask), -1).any(dim=1)).flatten().tolist()
    shown = ", ".join(str(i) for i in bad[:limit])
    return f"image{'s' if len(bad) > 1 else ''} {shown}{', ...' if len(bad) > limit else ''}"


def check_images(where: str, x: torch.Tensor, out: object, what: str = "returned") -> torch.Tensor:
    """Check `out` against the input batch `x`; returns `out` unchanged (device and autograd graph kept).

    `what` starts each message: "returned" for an attack, "preprocessed images have" for a defense."""
    if not isinstance(out, torch.Tensor):
        raise ContractError(where, f"{what} a {type(out).__name__}; expected a torch.Tensor of shape "
                                   f"{tuple(x.shape)}")
    if tuple(out.shape) != tuple(x.shape):
        raise ContractError(where, f"{what} shape {tuple(out.shape)}; the input had shape {tuple(x.shape)}")
    if not out.is_floating_point():
        raise ContractError(where, f"{what} dtype {out.dtype}; expected floating point (float32) in [0, 1]")
    o = out.detach()
    if o.numel() == 0:
        return out
    finite = torch.isfinite(o)
    if not bool(finite.all()):
        raise ContractError(where, f"{what} {int((~finite).sum())} non-finite values (NaN or inf) in "
                                   f"{_which(~finite)}")
    outside = (o < -RANGE_TOLERANCE) | (o > 1.0 + RANGE_TOLERANCE)
    if bool(outside.any()):
        raise ContractError(where, f"{what} values outside [0, 1] (min {float(o.min()):.4g}, max "
                                   f"{float(o.max()):.4g}) in {_which(outside)}")
    return out
