"""Votes of a base detector under Gaussian noise, and the soft smoothed classifier that attacks differentiate.

The noise of an image is a function of the image: its generator is seeded from a hash of the defense's
seed, a purpose tag (PREDICT, CERTIFY's selection and estimation, the attack surrogate) and the image's
float32 bytes. So a vote depends neither on the batch the image came in nor on which cells a process ran
before (a smoothed detector is cached across cells), and the same stored image gets the same vote in every
cell. Per image, `count` samples are drawn from its generator in chunks of at most `batch`
(`chunk_sizes`), each `torch.randn((size, C, H, W), generator=g)` on the image's device, then scaled by sigma;
each chunk is one forward pass of its own (images never share one: a vote does not depend on its neighbours,
not even through the float rounding of a batch).

The noisy image is clipped to [0, 1] before the base detector sees it, in training as in evaluation: the
smoothed classifier is that of f(clip(.)), and Cohen et al.'s theorem holds for any base classifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch import nn

from bench.models.detector import Detector

TAGS = ("predict", "select", "estimate", "surrogate")
MIN_PROB = 1e-12  # the soft classifier's log-probabilities stay finite


def image_seeds(x: torch.Tensor, seed: int, tag: str) -> list[int]:
    """One generator seed per image of `x` (N x C x H x W): a hash of (seed, tag, the image's float32 bytes)."""
    if tag not in TAGS:
        raise ValueError(f"unknown noise tag {tag!r}; expected one of {', '.join(TAGS)}")
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    out = []
    for img in arr:
        h = hashlib.blake2b(f"{seed}:{tag}:".encode(), digest_size=8)
        h.update(img.tobytes())
        out.append(int.from_bytes(h.digest(), "little") & (2**63 - 1))
    return out


def chunk_sizes(count: int, batch: int) -> list[int]:
    """How `count` samples of one image are drawn: chunks of `batch`, then the remainder."""
    return [min(batch, count - i) for i in range(0, count, batch)]


def noise_chunks(shape: tuple[int, ...], count: int, batch: int, seed: int,
                 device: torch.device) -> Iterator[torch.Tensor]:
    """The standard normal noise of one image (unscaled), chunk by chunk (see the module doc)."""
    g = torch.Generator(device=device).manual_seed(seed)
    for size in chunk_sizes(count, batch):
        yield torch.randn((size, *shape), generator=g, device=device)


@torch.no_grad()
def vote_counts(base: Detector, x: torch.Tensor, count: int, sigma: float, seeds: list[int],
                batch: int) -> torch.Tensor:
    """How often the base detector predicts each class on `count` noisy copies of each image of `x`:
    int64 N x num_classes, on the CPU. `seeds`: one per image (`image_seeds`)."""
    base.eval()
    dev = base.device
    x = x.to(dev, torch.float32)
    counts = torch.zeros(len(x), base.spec.num_classes, dtype=torch.int64, device=dev)
    for i in range(len(x)):
        for noise in noise_chunks(tuple(x.shape[1:]), count, batch, seeds[i], dev):
            pred = base((x[i] + sigma * noise).clamp_(0.0, 1.0)).argmax(1)
            counts[i] += torch.bincount(pred, minlength=base.spec.num_classes)
    return counts.cpu()


class SoftSmoothed(nn.Module):
    """The soft smoothed classifier (Salman et al. 2019): log of the mean softmax of the base detector over
    `samples` noisy copies of each image, differentiable in the image (the noise is held fixed). Attacks
    through it are expectation over transformation over the noise, `samples` draws per pass."""

    def __init__(self, base: Detector, sigma: float, samples: int, seed: int) -> None:
        super().__init__()
        self.base = base
        self.sigma = sigma
        self.samples = samples
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = len(x), self.samples
        seeds = image_seeds(x, self.seed, "surrogate")
        noise = torch.stack([next(noise_chunks(tuple(x.shape[1:]), m, m, s, x.device)) for s in seeds]) \
            if n else x.new_zeros((0, m, *x.shape[1:]))
        z = (x.unsqueeze(1) + self.sigma * noise).clamp(0.0, 1.0).flatten(0, 1)
        probs = torch.softmax(self.base(z), dim=1).view(n, m, -1).mean(1)
        return probs.clamp_min(MIN_PROB).log()
