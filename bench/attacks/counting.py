"""Counting model passes: how many images went forward and backward through a detector's network.

All implementations end in `detector.net`: native attacks call the `Detector` (which calls `.net`),
ART and Foolbox wrap `.net` itself. A forward hook on `.net` counts the images of every forward call;
when the output is part of an autograd graph, a hook on the output tensor counts the images of every
backward pass through it (also `torch.autograd.grad` and repeated `retain_graph` passes, e.g. ART's
one backward per class). Counts are images, so a batch of 8 is 8 passes.

ART calls the children of an `nn.Sequential` one by one instead of the Sequential itself, so for a
Sequential the hooks sit on its last child (run exactly once per forward pass either way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PassCount:
    """Images forwarded through and back-propagated through the network."""

    forward: int = 0
    backward: int = 0

    def per_image(self, n: int) -> tuple[float, float]:
        """(forward, backward) passes per attacked image."""
        return (self.forward / n, self.backward / n) if n else (0.0, 0.0)


def _batch_size(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return int(obj.shape[0]) if obj.ndim else 1
    if isinstance(obj, (tuple, list)) and obj:
        return _batch_size(obj[0])
    return 0


class _Wrapper(nn.Module):
    """Fallback for networks that refuse hooks (TorchScript): counts around the inner module."""

    def __init__(self, inner: nn.Module, counter: _Counter) -> None:
        super().__init__()
        self.inner = inner
        self._counter = counter

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self._counter.after_forward(args, out)
        return out


class _Counter:
    def __init__(self) -> None:
        self.count = PassCount()

    def after_forward(self, inputs, output) -> None:
        self.count.forward += _batch_size(inputs)
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(self._on_backward)

    def _on_backward(self, grad: torch.Tensor) -> None:
        self.count.backward += _batch_size(grad)

    def hook(self, module: nn.Module, inputs, output) -> None:
        self.after_forward(inputs, output)


_ACTIVE: dict[int, list[_Counter]] = {}


def add_passes(detector: nn.Module, forward: int, backward: int) -> None:
    """Tell the counters on `detector` of passes that no hook sees: a replayed CUDA graph runs the
    captured network without calling it (and its capture calls it without computing anything)."""
    for counter in _ACTIVE.get(id(detector), []):
        counter.count.forward += forward
        counter.count.backward += backward


@contextmanager
def count_passes(detector: nn.Module) -> Iterator[PassCount]:
    """Count passes through `detector.net` (or `detector` itself if it has no `.net`) while inside."""
    counter = _Counter()
    owner, attr = (detector, "net") if isinstance(getattr(detector, "net", None), nn.Module) else (None, None)
    target = getattr(owner, attr) if owner is not None else detector
    while isinstance(target, nn.Sequential) and len(target):
        last = list(target._modules)[-1]
        owner, attr, target = target, last, target._modules[last]
    handle = None
    try:
        handle = target.register_forward_hook(counter.hook)
    except (RuntimeError, AttributeError, NotImplementedError):
        handle = None
    if handle is None and owner is None:
        raise TypeError(f"cannot count passes through {type(detector).__name__}: it refuses forward hooks")
    swapped = handle is None
    if swapped:
        setattr(owner, attr, _Wrapper(target, counter))
    _ACTIVE.setdefault(id(detector), []).append(counter)
    try:
        yield counter.count
    finally:
        _ACTIVE[id(detector)].remove(counter)
        if not _ACTIVE[id(detector)]:
            del _ACTIVE[id(detector)]
        if swapped:
            setattr(owner, attr, target)
        elif handle is not None:
            handle.remove()
