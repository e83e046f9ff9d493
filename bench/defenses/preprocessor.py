"""`PreprocessorDefense`: an input transformation in front of the detector, and an ART preprocessor.

Kept apart from `bench.defenses.base` because it subclasses ART's `PreprocessorPyTorch`, and importing
ART is slow: a defense file imports it from here.
"""

from __future__ import annotations

import torch

from bench.defenses.contract import check_preprocessor_output
from bench.settings import configure_art

configure_art()

from art.defences.preprocessor.preprocessor import PreprocessorPyTorch  # noqa: E402


class PreprocessorDefense(PreprocessorPyTorch):
    """An input preprocessing defense; subclasses implement `transform(x)` and set `differentiable`.

    Contract of `transform`: a float tensor N x 3 x H x W in [0, 1] in; a tensor of the same shape,
    dtype and device, finite, with values in [0, 1] out. `forward` checks this on every call
    (`check_output`) and raises `ContractError` naming the defense.

    `differentiable` says how attacks get gradients through the defense:

    - True: `transform` is differentiable in PyTorch, and attacks use its exact gradient.
    - False (JPEG, a median filter, anything through numpy): `forward` runs `transform` without
      autograd and returns `f(x)` with the straight-through BPDA estimate (Athalye et al. 2018), the
      gradient of the identity: `f(x).detach() + (x - x.detach())`, equal in value to `f(x)` exactly
      and in gradient to `x + (f(x) - x).detach()`. The estimate sits in `forward` because ART's
      all-PyTorch preprocessing chain differentiates through `forward()` and never calls
      `estimate_forward`; `estimate_forward` (used by ART's numpy path) returns the same.

    Labels pass through unchanged. The defense acts at prediction and attack time (`apply_predict`),
    not when ART fits a model (`apply_fit` is False).
    """

    name: str = "preprocessor-defense"
    differentiable: bool = True
    check_output: bool = True

    def __init__(self, device_type: str = "gpu") -> None:
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=False, apply_predict=True)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The defense itself; see the class docstring for the contract."""
        raise NotImplementedError(f"{type(self).__name__} must implement transform(x)")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.differentiable:
            out = self.transform(x)
            if self.check_output:
                check_preprocessor_output(self.name, x, out)
            return out, y
        with torch.no_grad():
            fx = self.transform(x.detach())
        if self.check_output:
            check_preprocessor_output(self.name, x, fx)
        return fx.detach() + (x - x.detach()), y

    def needs_calibration(self) -> bool:
        """Whether `calibrate(images, labels, detector)` must run before the defense is used (a setting the
        defense chooses on held-out images, like DIP's `readout: auto`); the suite then calls it on its
        calibration images (`bench.cells.context.RunContext.calibration_images`)."""
        return False

    def calibrate(self, images: torch.Tensor, labels: torch.Tensor, classifier) -> object:
        """Choose the defense's data-dependent settings on held-out images; see `needs_calibration`."""
        return None

    def estimate_forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(x, y)[0]

    def describe(self) -> dict:
        """The parameters that change the defense's output (for cache keys and reports)."""
        return {"class": type(self).__name__}

    def _check_params(self) -> None:  # ART's hook; subclasses validate in their own __init__
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, differentiable={self.differentiable})"
