"""The DIP generator network, the "skip" U-Net, in two forms: one image (`SkipNet`) and N at once.

Per level: a down path (3x3 conv, stride 2, BN, LeakyReLU, 3x3 conv, BN, LeakyReLU), the deeper
levels, an upsampling back to the level's size, an optional skip branch (1x1 conv, BN, LeakyReLU)
concatenated in front, then BN, 3x3 conv, BN, LeakyReLU, 1x1 conv, BN, LeakyReLU; a final 1x1 conv
to 3 channels and a sigmoid. `SkipNet` is this network as a plain `nn.Module`, for one image; it is
the reference the batched network is tested against.

`BatchedSkipNet` evaluates N such networks on N inputs with stacked parameters (a leading dimension
N): convolutions run as one grouped convolution (groups = N) at the large resolutions and as a
batched matrix product (`torch.baddbmm` over im2col columns) at the small ones and for 1x1 kernels;
batch norm normalises each image's channels over that image alone (what BatchNorm does with a batch
of one).

Levels whose down path would shrink the image below 2 x 2 are left out (`DIPConfig.levels_for`).
Upsampling goes to the exact size of the level above, so odd sizes work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from bench.dip.config import DIPConfig
from bench.errors import BenchError

BN_EPS = 1e-5


# --------------------------------------------------------------------------------------------------
# One image


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
# N images at once


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
