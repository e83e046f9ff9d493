"""Restarts of a randomised attack: each restart runs only on the images no earlier one broke."""

from __future__ import annotations

from collections.abc import Callable

import torch

RunFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def with_restarts(x: torch.Tensor, y: torch.Tensor, broken: torch.Tensor, restarts: int, run: RunFn) -> torch.Tensor:
    """`run(x_sub, y_sub) -> (fooled, x_adv_sub)` up to `restarts` times on the images not yet `broken` (updated
    in place); returns the batch with each image's last attempt (the original where none ran)."""
    adv = x.clone()
    for _ in range(restarts):
        idx = torch.nonzero(~broken).flatten()
        if len(idx) == 0:
            break
        fooled, xa = run(x[idx], y[idx])
        adv[idx] = xa
        broken[idx[fooled]] = True
    return adv
