"""Deep Image Prior purification (Ulyanov et al. 2018), the paper's eq. (12), batched.

For each image x a fresh generator network f(theta, z) is fitted by minimising MSE(f(theta, z), x) with
Adam over theta; the network reproduces natural image content before it reproduces the adversarial
perturbation, so the image read out at an intermediate iteration is the purified one.

The generator is the DIP "skip" network (a U-Net): per level, a down path (3x3 conv, stride 2, BN,
LeakyReLU, 3x3 conv, BN, LeakyReLU), the deeper levels, an upsampling back to the level's size, an
optional skip branch (1x1 conv, BN, LeakyReLU) concatenated in front, then BN, 3x3 conv, BN, LeakyReLU,
1x1 conv, BN, LeakyReLU; a final 1x1 conv to 3 channels and a sigmoid. `SkipNet` is this network as a
plain `nn.Module`, for one image; it is the reference the batched engine is tested against.

Batched engine: N images are fitted at once, each with its own network, input noise, jitter stream
and Adam state. Parameters are stacked (a leading dimension N); convolutions run as one grouped
convolution (groups = N) at the large resolutions and as a batched matrix product (`torch.baddbmm`
over im2col columns) at the small ones and for 1x1 kernels; batch norm normalises each image's
channels over that image alone (what BatchNorm does with a batch of one); Adam is elementwise, so one
(fused) Adam over the stacked tensors equals N separate ones. The loss is the sum of the per-image
MSEs, so each network gets exactly its own gradient. Each image's initial weights, input z and
jitter noise come from a generator seeded by (seed, image key), the key being the image's content
hash unless given, so a result does not depend on which other images share its batch.

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
32 x 32 image gets 4. Upsampling goes to the exact size of the level above, so odd sizes work.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from bench.device import resolve_device
from bench.errors import BenchError

BN_EPS = 1e-5


class DIPConfig(BaseModel):
    """Every parameter of DIP purification; the defaults are the paper's (Ulyanov et al.'s denoising net)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels_down: tuple[int, ...] = Field((8, 16, 32, 64, 128), description="channels of each level's down path")
    channels_up: tuple[int, ...] = Field((8, 16, 32, 64, 128), description="channels of each level's up path")
    channels_skip: tuple[int, ...] = Field((0, 0, 0, 4, 4), description="skip-branch channels (0: no skip)")
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    pad: Literal["reflection", "zero"] = "reflection"
    leaky_slope: float = Field(0.2, ge=0.0, description="LeakyReLU negative slope")
    input_channels: int = Field(32, ge=1, description="channels of the input noise z")
    input_scale: float = Field(0.1, gt=0.0, description="z ~ U[0, 1) * input_scale")
    input_jitter: float = Field(1.0 / 30.0, ge=0.0, description="std of the Gaussian added to z at each step")
    lr: float = Field(0.01, gt=0.0, description="Adam learning rate (network weights only)")
    ema: float = Field(0.99, ge=0.0, lt=1.0, description="weight of the exponential moving average of outputs")
    iterations: int = Field(10_000, ge=1, description="optimisation steps (trajectories run them all)")
    readout: int | Literal["auto"] = Field(6_000, description="iteration whose averaged output is the result")
    readout_range: tuple[int, int, int] = Field(
        (2_500, 7_500, 500), description="candidates for readout=auto: (first, last, step), inclusive"
    )
    batch_size: int = Field(16, ge=1, description="images fitted at once (each with its own network)")
    bmm_max_pixels: int = Field(
        64, ge=0, description="3x3 convolutions whose output has at most this many pixels run as bmm"
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="CPU: batches fitted in parallel threads, each with one intra-op thread "
        "(default: torch's thread count)",
    )

    @field_validator("readout")
    @classmethod
    def _readout(cls, v: int | str) -> int | str:
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError(f"readout must be a positive iteration or 'auto', got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DIPConfig:
        n = len(self.channels_down)
        if n == 0 or len(self.channels_up) != n or len(self.channels_skip) != n:
            raise ValueError(
                "channels_down, channels_up and channels_skip must have the same (non-zero) length, got "
                f"{len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)}"
            )
        if min(self.channels_down) < 1 or min(self.channels_up) < 1 or min(self.channels_skip) < 0:
            raise ValueError("channel counts must be positive (skip channels may be 0)")
        if isinstance(self.readout, int) and self.readout > self.iterations:
            raise ValueError(f"readout ({self.readout}) is after the last iteration ({self.iterations})")
        first, last, step = self.readout_range
        if first < 1 or last < first or step < 1:
            raise ValueError(f"readout_range must be (first >= 1, last >= first, step >= 1), got {self.readout_range}")
        if self.readout == "auto" and first > self.iterations:
            raise ValueError(f"readout_range starts ({first}) after the last iteration ({self.iterations})")
        return self

    @classmethod
    def from_dict(cls, params: dict | None, where: str = "dip") -> DIPConfig:
        """Validate user parameters; errors become a `BenchError` naming the field."""
        try:
            return cls(**dict(params or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise BenchError(f"{where}.{loc}" if loc else where, f"{loc}: {msg}" if loc else msg) from exc

    def candidates(self) -> list[int]:
        """The readout candidates of `readout_range` that lie within `iterations`."""
        first, last, step = self.readout_range
        return [t for t in range(first, last + 1, step) if t <= self.iterations]

    def levels_for(self, height: int, width: int) -> int:
        """How many levels fit an image: each level's down path must leave at least 2 x 2 pixels."""
        levels, h, w = 0, height, width
        for _ in self.channels_down:
            h, w = (h + 1) // 2, (w + 1) // 2
            if h < 2 or w < 2:
                break
            levels += 1
        return levels

    def describe(self) -> dict:
        """All fields. `batch_size`, `bmm_max_pixels` and `workers` only choose how the engine runs (they
        change float32 results in the last bits, see the module's notes), the others the method."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------------
# The reference network (one image)


class _Level(nn.Module):
    """One level of the skip network; its deeper level (if any) is run by `SkipNet`."""

    def __init__(self, cin: int, down: int, up: int, skip: int, deeper_out: int, pad: str) -> None:
        super().__init__()
        mode = "reflect" if pad == "reflection" else "zeros"
        self.skip_conv = nn.Conv2d(cin, skip, 1) if skip else None
        self.skip_bn = nn.BatchNorm2d(skip) if skip else None
        self.down_conv1 = nn.Conv2d(cin, down, 3, stride=2, padding=1, padding_mode=mode)
        self.down_bn1 = nn.BatchNorm2d(down)
        self.down_conv2 = nn.Conv2d(down, down, 3, padding=1, padding_mode=mode)
        self.down_bn2 = nn.BatchNorm2d(down)
        self.join_bn = nn.BatchNorm2d(skip + deeper_out)
        self.up_conv1 = nn.Conv2d(skip + deeper_out, up, 3, padding=1, padding_mode=mode)
        self.up_bn1 = nn.BatchNorm2d(up)
        self.up_conv2 = nn.Conv2d(up, up, 1)
        self.up_bn2 = nn.BatchNorm2d(up)


class SkipNet(nn.Module):
    """The DIP "skip" generator for one image (`levels` of the config's levels); output in (0, 1)."""

    def __init__(self, config: DIPConfig, levels: int | None = None) -> None:
        super().__init__()
        n = len(config.channels_down) if levels is None else levels
        if not 1 <= n <= len(config.channels_down):
            raise BenchError("dip.levels", f"expected 1..{len(config.channels_down)} levels, got {n}")
        self.config = config
        down, up, skip = config.channels_down[:n], config.channels_up[:n], config.channels_skip[:n]
        cins = (config.input_channels, *down[:-1])
        self.levels = nn.ModuleList(
            _Level(cins[i], down[i], up[i], skip[i], up[i + 1] if i + 1 < n else down[i], config.pad) for i in range(n)
        )
        self.out_conv = nn.Conv2d(up[0], 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out_conv(self._level(0, z)))

    def _level(self, i: int, x: torch.Tensor) -> torch.Tensor:
        lv: _Level = self.levels[i]  # type: ignore[assignment]
        slope = self.config.leaky_slope
        d = F.leaky_relu(lv.down_bn1(lv.down_conv1(x)), slope)
        d = F.leaky_relu(lv.down_bn2(lv.down_conv2(d)), slope)
        if i + 1 < len(self.levels):
            d = self._level(i + 1, d)
        d = _upsample(d, x.shape[-2:], self.config.upsample)
        if lv.skip_conv is not None:
            d = torch.cat([F.leaky_relu(lv.skip_bn(lv.skip_conv(x)), slope), d], 1)
        d = lv.join_bn(d)
        d = F.leaky_relu(lv.up_bn1(lv.up_conv1(d)), slope)
        return F.leaky_relu(lv.up_bn2(lv.up_conv2(d)), slope)


def _upsample(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    if mode == "bilinear":
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=tuple(size), mode="nearest")


def init_skipnet(net: SkipNet, generator: torch.Generator) -> SkipNet:
    """PyTorch's default initialisation (conv weights and biases ~ U(+-1/sqrt(fan_in)), BN 1 and 0),
    drawn from `generator` so that it depends on nothing else."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                bound = 1.0 / math.sqrt(m.in_channels * m.kernel_size[0] * m.kernel_size[1])
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return net


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
class _ImageStart:
    """What one image's fit starts from: its network's weights, its input z and its jitter generator."""

    state: dict[str, torch.Tensor]
    z: torch.Tensor
    generator: torch.Generator


def _start(config: DIPConfig, levels: int, shape: tuple[int, int], seed: int, device: torch.device) -> _ImageStart:
    g = torch.Generator().manual_seed(seed)
    net = init_skipnet(SkipNet(config, levels), g)
    z = torch.rand(config.input_channels, *shape, generator=g) * config.input_scale
    jitter = torch.Generator(device=device).manual_seed(seed ^ 0x5DEECE66D)
    return _ImageStart({k: v.detach() for k, v in net.named_parameters()}, z, jitter)


# --------------------------------------------------------------------------------------------------
# The batched engine


def _bn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Batch norm of each image's channels over that image alone (x: N x C x H x W, weight: N x C)."""
    n, c, h, w = x.shape
    y = F.batch_norm(x.reshape(1, n * c, h, w), None, None, weight.reshape(-1), bias.reshape(-1), True, 0.0, BN_EPS)
    return y.view(n, c, h, w)


class _Conv:
    """A batched convolution: N images, N weight sets (N x Cout x Cin x k x k), one plan per layer."""

    def __init__(self, k: int, stride: int, pad: str, in_hw: tuple[int, int], method: str, device: torch.device):
        self.k, self.stride, self.method = k, stride, method
        self.pad_mode = "reflect" if pad == "reflection" else "constant"
        p = k // 2
        h, w = in_hw
        self.out_hw = ((h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1)
        self.index: torch.Tensor | None = None
        if method == "bmm" and k > 1:
            # im2col as one gather from the padded image: column (tap, output pixel) -> input pixel.
            wp = w + 2 * p
            oy = torch.arange(self.out_hw[0]) * stride
            ox = torch.arange(self.out_hw[1]) * stride
            taps = [(dy, dx) for dy in range(k) for dx in range(k)]
            idx = [((oy[:, None] + dy) * wp + (ox[None, :] + dx)).reshape(-1) for dy, dx in taps]
            self.index = torch.cat(idx).to(device)

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, cin = x.shape[:2]
        cout = weight.shape[1]
        ho, wo = self.out_hw
        if self.k == 1:
            y = torch.baddbmm(bias.unsqueeze(-1), weight.reshape(n, cout, cin), x.reshape(n, cin, -1))
            return y.view(n, cout, ho, wo)
        p = self.k // 2
        xp = F.pad(x, (p, p, p, p), mode=self.pad_mode)
        if self.method == "grouped":
            y = F.conv2d(
                xp.reshape(1, n * cin, *xp.shape[-2:]),
                weight.reshape(n * cout, cin, self.k, self.k),
                bias.reshape(-1),
                stride=self.stride,
                groups=n,
            )
            return y.view(n, cout, ho, wo)
        cols = xp.reshape(n, cin, -1).index_select(2, self.index).view(n, cin * self.k * self.k, ho * wo)
        y = torch.baddbmm(bias.unsqueeze(-1), weight.reshape(n, cout, cin * self.k * self.k), cols)
        return y.view(n, cout, ho, wo)


class BatchedSkipNet:
    """N skip networks evaluated at once on N inputs; parameters are stacked tensors (leading N)."""

    def __init__(self, config: DIPConfig, levels: int, shape: tuple[int, int], device: torch.device) -> None:
        self.config, self.levels = config, levels
        self.convs: dict[str, _Conv] = {}
        cfg = config
        h, w = shape
        sizes = [(h, w)]
        for _ in range(levels):
            h, w = (h + 1) // 2, (w + 1) // 2
            sizes.append((h, w))

        def plan(name: str, k: int, stride: int, in_hw: tuple[int, int]) -> None:
            out = ((in_hw[0] - 1) // stride + 1) * ((in_hw[1] - 1) // stride + 1)
            method = "bmm" if k == 1 or out <= cfg.bmm_max_pixels else "grouped"
            self.convs[name] = _Conv(k, stride, cfg.pad, in_hw, method, device)

        for i in range(levels):
            pre = f"levels.{i}."
            if cfg.channels_skip[i]:
                plan(pre + "skip_conv", 1, 1, sizes[i])
            plan(pre + "down_conv1", 3, 2, sizes[i])
            plan(pre + "down_conv2", 3, 1, sizes[i + 1])
            plan(pre + "up_conv1", 3, 1, sizes[i])
            plan(pre + "up_conv2", 1, 1, sizes[i])
        plan("out_conv", 1, 1, sizes[0])

    def methods(self) -> dict[str, str]:
        """How each convolution runs ("grouped" or "bmm")."""
        return {k: ("bmm" if c.k == 1 else c.method) for k, c in self.convs.items()}

    def __call__(self, p: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._conv("out_conv", p, self._level(0, p, z)))

    def _conv(self, name: str, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.convs[name](x, p[name + ".weight"], p[name + ".bias"])

    def _cba(self, conv: str, bn: str, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = _bn(self._conv(conv, p, x), p[bn + ".weight"], p[bn + ".bias"])
        return F.leaky_relu(y, self.config.leaky_slope)

    def _level(self, i: int, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        pre = f"levels.{i}."
        d = self._cba(pre + "down_conv1", pre + "down_bn1", p, x)
        d = self._cba(pre + "down_conv2", pre + "down_bn2", p, d)
        if i + 1 < self.levels:
            d = self._level(i + 1, p, d)
        d = _upsample(d, x.shape[-2:], self.config.upsample)
        if self.config.channels_skip[i]:
            d = torch.cat([self._cba(pre + "skip_conv", pre + "skip_bn", p, x), d], 1)
        d = _bn(d, p[pre + "join_bn.weight"], p[pre + "join_bn.bias"])
        d = self._cba(pre + "up_conv1", pre + "up_bn1", p, d)
        return self._cba(pre + "up_conv2", pre + "up_bn2", p, d)


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


def _check_images(images: torch.Tensor, where: str) -> None:
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
    _check_images(images, "dip.images")
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
        with _evaluating(classifier):
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


def _moving_average(avg: torch.Tensor | None, out: torch.Tensor, weight: float) -> torch.Tensor:
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
        starts = [_start(config, self.levels, shape, s, device) for s in seeds]
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
            self.avg = _moving_average(self.avg, out, cfg.ema)
        self.loss = loss.detach()
        self.t += 1
        return out


class ReferenceFitter:
    """The plain procedure for one image (`SkipNet`, `torch.optim.Adam` as in the DIP reference code), from
    the same initial weights, z and jitter stream as the batched engine; same `step()` and `avg`."""

    def __init__(
        self,
        image: torch.Tensor,
        config: DIPConfig,
        seed: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        device = torch.device(device)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        self.config, self.levels = config, config.levels_for(h, w)
        st = _start(config, self.levels, (h, w), seed, device)
        self.net = SkipNet(config, self.levels)
        self.net.load_state_dict(st.state, strict=False)
        self.net.to(device, dtype).train()
        self.generator = st.generator
        self.z = st.z.to(device, dtype)[None]
        self.target = image.detach().to(device, dtype)[None]
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.jitter = torch.empty_like(self.z)
        self.avg: torch.Tensor | None = None
        self.t = 0

    def step(self) -> torch.Tensor:
        cfg = self.config
        with torch.enable_grad():
            x = self.z
            if cfg.input_jitter > 0:
                x = self.z + self.jitter.normal_(0.0, cfg.input_jitter, generator=self.generator)
            out = self.net(x)
            loss = (out - self.target).square().mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        out = out.detach()
        with torch.no_grad():
            self.avg = _moving_average(self.avg, out, cfg.ema)
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
            traj.append(_p_real(classifier, fitter.avg))
        bar.update(len(images))
    p_real = np.stack(traj, axis=1) if traj else np.zeros((len(images), 0), dtype=np.float32)
    assert fitter.loss is not None
    return {"snapshots": snaps, "p_real": p_real, "mse": fitter.loss.cpu().numpy()}


def fit_reference(
    image: torch.Tensor,
    config: DIPConfig,
    steps: int,
    seed: int = 0,
    key: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """`ReferenceFitter` run for `steps` iterations on one image (3 x H x W); its averaged output, seeded
    like `purify` (by `seed` and `key`, default the image's content hash). The test oracle."""
    _check_images(image[None], "dip.image")
    fitter = ReferenceFitter(image, config, image_seed(seed, key or image_key(image)), "cpu", dtype)
    for _ in range(steps):
        fitter.step()
    assert fitter.avg is not None
    return fitter.avg[0].clamp(0.0, 1.0)


@contextmanager
def _evaluating(classifier: object):
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


def _p_real(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """softmax(classifier(x))[:, 1] as float32 numpy; the classifier is expected in eval mode."""
    if isinstance(classifier, nn.Module):
        p = next(classifier.parameters(), None)
        if p is not None:
            x = x.to(p.device)
    with torch.no_grad():
        logits = classifier(x.float())
    return torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Choosing the readout


@dataclass(frozen=True)
class ReadoutChoice:
    """The readout chosen on a calibration subset, with the accuracy at every candidate."""

    iteration: int
    accuracy: dict[int, float]
    n_images: int
    threshold: float

    def as_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "accuracy": {str(k): v for k, v in self.accuracy.items()},
            "n_images": self.n_images,
            "threshold": self.threshold,
        }


def pick_readout(accuracy: dict[int, float]) -> int:
    """The candidate of highest accuracy; ties go to the earlier iteration."""
    if not accuracy:
        raise BenchError("dip.readout_range", "no readout candidates")
    best = max(accuracy.values())
    return min(t for t, a in accuracy.items() if a >= best - 1e-12)


def choose_readout(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    config: DIPConfig,
    seed: int = 0,
    threshold: float = 0.5,
    quiet: bool = True,
    keys: Sequence[str] | None = None,
) -> ReadoutChoice:
    """Pick the readout in `config.readout_range` that maximises the classifier's accuracy on the
    purified calibration images (P(real) >= threshold means real, label 1)."""
    cands = config.candidates()
    if not cands:
        raise BenchError("dip.readout_range", f"no candidate in {config.readout_range} is within the iterations")
    if len(labels) != len(images) or len(images) == 0:
        raise BenchError("dip.calibration", f"need >= 1 image and one label each, got {len(images)}, {len(labels)}")
    res = purify(images, config.model_copy(update={"readout": "auto"}), seed, candidates=cands, quiet=quiet, keys=keys)
    y = torch.as_tensor(labels).cpu().numpy().astype(np.int64)
    acc = {}
    with _evaluating(classifier):
        for t in cands:
            p = _p_real(classifier, res.snapshots[t])
            acc[t] = float(((p >= threshold).astype(np.int64) == y).mean())
    return ReadoutChoice(pick_readout(acc), acc, len(images), threshold)
