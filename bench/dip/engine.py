"""The batched DIP purification engine: `purify` (the paper's eq. (12)) and `DIPFitter`.

For each image x a fresh generator network f(theta, z) is fitted by minimising MSE(f(theta, z), x) with
Adam over theta; the network reproduces natural image content before it reproduces the adversarial
perturbation, so the image read out at an intermediate iteration is the purified one.

Batched engine (`DIPFitter`): N images are fitted at once, each with its own generator network
(`bench.dip.network`), input noise, jitter stream and Adam state. Parameters are stacked (a leading
dimension N) and run through `BatchedSkipNet` (grouped convolutions and batched matrix products,
per-image batch norm); Adam is elementwise, so one (fused) Adam over the stacked tensors equals N
separate ones. The loss is the sum of the per-image MSEs, so each network gets exactly its own
gradient. Each image's initial weights, input z and jitter noise come from a generator seeded by
(seed, image key), the key being the image's content hash unless given, so a result does not depend
on which other images share its batch.

On a CPU, `purify` fits several batches at once in Python threads with one intra-op thread each (DIP's
many small operations parallelise poorly inside an operation); on a GPU one batch at a time.

Floating point: the batched engine computes exactly what one network per image computes (in float64
they agree to 1e-15 after many iterations, a test). In float32, different kernels (a grouped
convolution of N groups or of one, say) round differently in the last bits, and Adam turns such
differences in near-zero gradients into steps of size up to lr, so two float32 runs that differ in
batch composition, thread count or hardware drift apart by about 1e-3 per pixel within a few
iterations and 1e-2 after hundreds: statistically equivalent purifications, not identical bits.
Given the same inputs, configuration and machine, a run is deterministic.

Notes on fidelity: BatchNorm runs in training mode throughout and the readout is the exponential
moving average of the outputs, as in the DIP reference code. Levels whose down path would shrink the
image below 2 x 2 are left out (`DIPConfig.levels_for`): 5 levels need at least 33 x 33 pixels, so a
32 x 32 image gets 4.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.dip.config import DIPConfig
from bench.dip.network import BatchedSkipNet, SkipNet, init_skipnet
from bench.errors import BenchError
from bench.models.device import resolve_device

# --------------------------------------------------------------------------------------------------
# Per-image randomness


def image_key(image: torch.Tensor) -> str:
    """A stable key for an image: the SHA-256 of its float32 bytes (first 16 hex digits)."""
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def image_seed(seed: int, key: str) -> int:
    """A 63-bit seed from (seed, key), the same in every process."""
    return int.from_bytes(hashlib.sha256(f"dip:{seed}:{key}".encode()).digest()[:8], "little") >> 1


@dataclass
class ImageStart:
    """What one image's fit starts from: its network's weights, its input z and its jitter generator."""

    state: dict[str, torch.Tensor]
    z: torch.Tensor
    generator: torch.Generator


def image_start(config: DIPConfig, levels: int, shape: tuple[int, int], seed: int, device: torch.device) -> ImageStart:
    g = torch.Generator().manual_seed(seed)
    net = init_skipnet(SkipNet(config, levels), g)
    z = torch.rand(config.input_channels, *shape, generator=g) * config.input_scale
    jitter = torch.Generator(device=device).manual_seed(seed ^ 0x5DEECE66D)
    return ImageStart({k: v.detach() for k, v in net.named_parameters()}, z, jitter)


# --------------------------------------------------------------------------------------------------
# Purification


@dataclass
class DIPResult:
    """What `purify` returns; images are N x 3 x H x W on the CPU (float32 unless asked), in input order."""

    purified: torch.Tensor | None
    readout: int | None
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    iterations: np.ndarray | None = None
    p_real: np.ndarray | None = None
    final_mse: np.ndarray | None = None
    levels: int = 0
    seconds: float = 0.0
    steps_run: int = 0
    keys: list[str] = field(default_factory=list)
    workers: int = 1

    def psnr(self, reference: torch.Tensor, at: int | None = None) -> np.ndarray:
        """PSNR (dB) of the purified images (or the snapshot at iteration `at`) against `reference`."""
        img = self.purified if at is None else self.snapshots[at]
        if img is None:
            raise BenchError("dip.readout", "no purified images: the readout is 'auto' (use choose_readout)")
        return psnr(img, reference)


def psnr(x: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """Per-image PSNR in dB for images in [0, 1]."""
    mse = ((x.float().cpu() - reference.float().cpu()) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return (10.0 * torch.log10(1.0 / mse)).numpy()


def check_images(images: torch.Tensor, where: str) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise BenchError(where, f"expected images N x 3 x H x W, got {shape}")
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise BenchError(where, "images contain NaN or infinite values")


def purify(
    images: torch.Tensor,
    config: DIPConfig,
    seed: int = 0,
    record_every: int | None = None,
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
    quiet: bool = True,
    candidates: Sequence[int] = (),
    keys: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> DIPResult:
    """Purify each image by DIP; the result at `config.readout` (and at each of `candidates`).

    `record_every`: record P(real) of the averaged output every that many iterations (and run all
    `config.iterations`), which needs `classifier` (a `Detector`, or any callable returning logits of
    N x 2 for [0, 1] images); P(real) is softmax[:, 1]. Without it, iterations after the last one any
    output needs are not run (they cannot change it). `keys`: one string per image for its random
    streams (default: the image's content hash). `dtype`: float32, or float64 for exact comparisons
    (tests). With `config.readout == "auto"` nothing is read out
    but the snapshots at `candidates`; `choose_readout` picks the readout.
    """
    check_images(images, "dip.images")
    n = images.shape[0]
    if keys is not None and len(keys) != n:
        raise BenchError("dip.keys", f"expected {n} keys, got {len(keys)}")
    if record_every is not None and (record_every < 1 or classifier is None):
        raise BenchError("dip.record_every", "recording trajectories needs record_every >= 1 and a classifier")
    readout = config.readout if isinstance(config.readout, int) else None
    cands = sorted({int(t) for t in candidates} | ({readout} if readout else set()))
    if any(t < 1 or t > config.iterations for t in cands):
        raise BenchError("dip.candidates", f"readout candidates must lie in 1..{config.iterations}, got {cands}")
    h, w = images.shape[-2:]
    levels = config.levels_for(h, w)
    if levels < 1:
        raise BenchError("dip.images", f"images of {h} x {w} pixels are too small for DIP (at least 3 x 3)")
    dev = resolve_device(None) if device is None else torch.device(device)
    key_list = list(keys) if keys is not None else [image_key(im) for im in images]
    steps = config.iterations if record_every is not None else (max(cands) if cands else 0)
    result = DIPResult(purified=None, readout=readout, levels=levels, steps_run=steps, keys=key_list)
    if n == 0 or steps == 0:
        empty = images.detach().float().cpu().clone()
        result.snapshots = {t: empty.clone() for t in cands}
        result.purified = empty if readout else None
        return result
    start = time.perf_counter()
    chunks = _chunks(n, config.batch_size, _workers(config, dev))
    workers = min(_workers(config, dev), len(chunks))
    bar = tqdm(total=n * steps, desc="DIP", unit="img-it", disable=quiet, leave=False)

    def run(bounds: tuple[int, int]) -> dict:
        lo, hi = bounds
        seeds = [image_seed(seed, k) for k in key_list[lo:hi]]
        return _fit(images[lo:hi], config, seeds, steps, cands, record_every, classifier, dev, dtype, bar)

    threads = torch.get_num_threads()
    try:
        with evaluating(classifier):
            if workers > 1:
                torch.set_num_threads(1)
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    outs = list(pool.map(run, chunks))
            else:
                outs = [run(c) for c in chunks]
    finally:
        torch.set_num_threads(threads)
        bar.close()
    result.snapshots = {t: torch.cat([o["snapshots"][t] for o in outs]) for t in cands}
    result.purified = result.snapshots[readout] if readout else None
    result.final_mse = np.concatenate([o["mse"] for o in outs])
    if record_every is not None:
        result.iterations = np.arange(record_every, steps + 1, record_every)
        result.p_real = np.concatenate([o["p_real"] for o in outs])
    result.seconds = time.perf_counter() - start
    result.workers = workers
    return result


def _workers(config: DIPConfig, device: torch.device) -> int:
    """Parallel fits: on the CPU, one per intra-op thread unless the config says; on a GPU, one."""
    if device.type != "cpu":
        return 1
    return config.workers if config.workers is not None else max(1, torch.get_num_threads())


def _chunks(n: int, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, balanced index ranges of at most `batch_size` images, a multiple of `workers` of them."""
    count = math.ceil(n / batch_size)
    count = min(n, math.ceil(count / workers) * workers)
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def update_average(avg: torch.Tensor | None, out: torch.Tensor, weight: float) -> torch.Tensor:
    """The exponential moving average of the outputs (in place after the first step)."""
    return out.clone() if avg is None else avg.mul_(weight).add_(out, alpha=1.0 - weight)


class DIPFitter:
    """The batched engine for one batch: one network, input z, jitter stream and Adam state per image.

    `step()` runs one iteration for every image (jitter z, forward, per-image MSE, backward, Adam) and
    updates the moving average `avg`; `purify` drives it, the throughput benchmark times it."""

    def __init__(
        self,
        images: torch.Tensor,
        config: DIPConfig,
        seeds: Sequence[int],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        device = torch.device(device)
        shape = (int(images.shape[-2]), int(images.shape[-1]))
        self.config, self.levels = config, config.levels_for(*shape)
        starts = [image_start(config, self.levels, shape, s, device) for s in seeds]
        self.generators = [st.generator for st in starts]
        self.net = BatchedSkipNet(config, self.levels, shape, device)
        self.params = {
            k: torch.stack([st.state[k] for st in starts]).to(device, dtype).requires_grad_(True)
            for k in starts[0].state
        }
        self.z = torch.stack([st.z for st in starts]).to(device, dtype)
        self.target = images.detach().to(device, dtype)
        self.opt = torch.optim.Adam(list(self.params.values()), lr=config.lr, fused=device.type in ("cpu", "cuda"))
        self.jitter = torch.empty_like(self.z)
        self.avg: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        self.t = 0

    def step(self) -> torch.Tensor:
        """One iteration for every image; returns the (detached) network outputs."""
        cfg = self.config
        with torch.enable_grad():
            x = self.z
            if cfg.input_jitter > 0:
                for i, g in enumerate(self.generators):
                    self.jitter[i].normal_(0.0, cfg.input_jitter, generator=g)
                x = self.z + self.jitter
            out = self.net(self.params, x)
            loss = (out - self.target).square().mean(dim=(1, 2, 3))
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opt.step()
        out = out.detach()
        with torch.no_grad():
            self.avg = update_average(self.avg, out, cfg.ema)
        self.loss = loss.detach()
        self.t += 1
        return out


def _fit(
    images: torch.Tensor,
    config: DIPConfig,
    seeds: list[int],
    steps: int,
    cands: list[int],
    record_every: int | None,
    classifier: Callable[[torch.Tensor], torch.Tensor] | None,
    device: torch.device,
    dtype: torch.dtype,
    bar: tqdm,
) -> dict:
    """Fit one network per image of a batch, all at once; snapshots of the averaged output at `cands`."""
    fitter = DIPFitter(images, config, seeds, device, dtype)
    snaps: dict[int, torch.Tensor] = {}
    want = set(cands)
    traj: list[np.ndarray] = []
    for t in range(1, steps + 1):
        fitter.step()
        assert fitter.avg is not None
        if t in want:
            snaps[t] = fitter.avg.clamp(0.0, 1.0).cpu()
        if record_every is not None and classifier is not None and t % record_every == 0:
            traj.append(predict_p_real(classifier, fitter.avg))
        bar.update(len(images))
    p_real = np.stack(traj, axis=1) if traj else np.zeros((len(images), 0), dtype=np.float32)
    assert fitter.loss is not None
    return {"snapshots": snaps, "p_real": p_real, "mse": fitter.loss.cpu().numpy()}


@contextmanager
def evaluating(classifier: object):
    """The classifier in eval mode for the duration (set once, so parallel fits never race on it)."""
    if not isinstance(classifier, nn.Module):
        yield
        return
    was = classifier.training
    classifier.eval()
    try:
        yield
    finally:
        classifier.train(was)


def predict_p_real(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """softmax(classifier(x))[:, 1] as float32 numpy; the classifier is expected in eval mode."""
    if isinstance(classifier, nn.Module):
        p = next(classifier.parameters(), None)
        if p is not None:
            x = x.to(p.device)
    with torch.no_grad():
        logits = classifier(x.float())
    return torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy().astype(np.float32)
