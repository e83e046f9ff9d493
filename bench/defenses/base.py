"""The defense plug-in API: three kinds, each a small class with a documented contract.

- `TrainingDefense`: changes the training recipe, by augmenting batches and/or adding a loss term.
- `PreprocessorDefense` (`bench.defenses.preprocessor`, its own module because it imports ART): transforms
  inputs before the detector; it *is* an ART `PreprocessorPyTorch`, so every ART attack runs through it.
- `WrapperDefense`: takes a detector and returns a detector.

Every defense has a `name`; the registry sets it to the suite's name for the defense, and every
contract violation (`bench.errors.ContractError`) names it. `bench.defenses.contract.check_defense`
exercises a defense's contract on a sample batch before a run uses it.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch

from bench.defenses.registry import KINDS
from bench.errors import ContractError
from bench.models.detector import Detector, ModelSpec

__all__ = ["KINDS", "TrainingDefense", "WrapperDefense", "as_detector", "defense_kind",
           "defense_kinds", "evaluation_kind"]



class TrainingDefense:
    """A training-time defense. Override either or both hooks; the defaults change nothing.

    Contract: `augment` returns a tensor of the same shape with values in [0, 1] (it runs on the CPU
    batch, before it moves to the device, and draws all randomness from `generator`, so training stays
    deterministic); `extra_loss` returns a finite scalar tensor that is added to the cross-entropy
    loss, or None. `describe()` returns the parameters that change the trained weights (they belong
    in the checkpoint's cache key).
    """

    name: str = "training-defense"

    def augment(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x

    def extra_loss(
        self, detector: Detector, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor | None:
        return None

    def needs_input_grad(self) -> bool:
        """True when `extra_loss` differentiates with respect to `x` (then `x.requires_grad` is set)."""
        return False

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__}


class WrapperDefense:
    """A defense that takes the detector and returns a detector (an ensemble, randomised smoothing, ...).

    Contract: `wrap(detector)` returns a `Detector` that takes images in [0, 1] of the same size and
    returns finite logits of shape N x num_classes. The returned detector's `.net` and `.spec` are what
    ART and Foolbox see (the spec's mean/std become their preprocessing), so the simplest correct
    result is `as_detector(module, like=detector)`, with `module` a network taking [0, 1] images.
    """

    name: str = "wrapper-defense"

    def wrap(self, detector: Detector) -> Detector:
        raise NotImplementedError(f"{type(self).__name__} must implement wrap(detector)")


def as_detector(module: torch.nn.Module, like: Detector) -> Detector:
    """A `Detector` around `module` (which takes [0, 1] images) with identity normalisation, and the
    input size and class count of `like`, on `like`'s device."""
    spec = ModelSpec(
        arch=f"wrapped-{like.spec.arch}", input_size=like.spec.input_size, num_classes=like.spec.num_classes
    )
    return Detector(module, spec).to(like.device)


def defense_kinds(obj: object) -> tuple[str, ...]:
    """Every kind a defense instance (or class) acts as; else ContractError.

    Most defenses have one kind. A class that subclasses both `TrainingDefense` and `WrapperDefense` acts as
    either, by where the suite names it (randomized smoothing: noise augmentation under a model's `defense:`,
    the smoothed detector under `defenses:`). Any ART `PreprocessorPyTorch` counts as a preprocessor, so ART's
    own defences can be named too.
    """
    cls = obj if inspect.isclass(obj) else type(obj)
    kinds = [k for k, base in (("training", TrainingDefense), ("wrapper", WrapperDefense)) if issubclass(cls, base)]
    art_pre = sys.modules.get("art.defences.preprocessor.preprocessor")
    if not kinds and art_pre is not None and issubclass(cls, art_pre.PreprocessorPyTorch):
        kinds.append("preprocessor")
    if kinds:
        return tuple(kinds)
    name = getattr(obj, "name", None) if not inspect.isclass(obj) else None
    raise ContractError(
        str(name or cls.__name__),
        f"{cls.__module__}.{cls.__qualname__} is not a defense: subclass bench.defenses.base."
        "TrainingDefense, PreprocessorDefense or WrapperDefense",
    )


def defense_kind(obj: object) -> str:
    """The kind of a defense instance (or class): "training", "preprocessor" or "wrapper" (the first of
    `defense_kinds`); else ContractError."""
    return defense_kinds(obj)[0]


def evaluation_kind(obj: object) -> str:
    """The kind a defense acts as under `defenses:` (evaluation time): its kind other than "training"."""
    kinds = [k for k in defense_kinds(obj) if k != "training"]
    if not kinds:
        raise ContractError(str(getattr(obj, "name", type(obj).__name__)),
                            "is a training-time defense; it belongs under a model's `defense:`")
    return kinds[0]
