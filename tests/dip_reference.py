"""The one-image reference implementation of DIP purification: the tests' oracle for the batched engine.

`ReferenceFitter` is the plain procedure of the DIP reference code (`SkipNet`, `torch.optim.Adam`, one
image), started from the same initial weights, input z and jitter stream as `bench.dip.engine`.
"""

from __future__ import annotations

import torch

from bench.dip.config import DIPConfig
from bench.dip.engine import check_images, image_key, image_seed, image_start, update_average
from bench.dip.network import SkipNet


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
        st = image_start(config, self.levels, (h, w), seed, device)
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
            self.avg = update_average(self.avg, out, cfg.ema)
        self.t += 1
        return out


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
    check_images(image[None], "dip.image")
    fitter = ReferenceFitter(image, config, image_seed(seed, key or image_key(image)), "cpu", dtype)
    for _ in range(steps):
        fitter.step()
    assert fitter.avg is not None
    return fitter.avg[0].clamp(0.0, 1.0)
