"""DIP purification as an ART preprocessor, so a DIP-defended detector is an estimator like any other.

`to_art(detector, preprocessing_defences=[DIPPreprocessor(config)])` gives a classifier that purifies
every input before the detector sees it. In the paper's setting the attack is crafted on the
undefended detector and the adversarial images are then scored by the defended one. When an attack
is run on the defended estimator itself (an adaptive attack), gradients pass through DIP by the
straight-through BPDA estimate: the value is f(x), the gradient is the identity's, i.e.
`x + (f(x) - x).detach()` (ART's all-PyTorch chain differentiates `forward()` directly).

Each image is purified from random streams seeded by (seed, the image's content hash), so its result
does not depend on the batch it arrives in, and a cache (by content hash) spares repeated work when
ART presents the same images again (predict after an attack, say).

With `resample: true` the defense is a randomized one for expectation over transformation (EOT): every
call purifies with fresh random streams, seeded by (seed, the number of calls so far), and nothing is
cached; an EOT attack (`eot: N`) then averages its gradient over N purifications with different seeds.
With `readout: auto`, `calibrate` must run first; a suite calls it on its calibration images.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from bench.defenses.preprocessor import PreprocessorDefense
from bench.dip.config import DIPConfig
from bench.dip.engine import image_key, image_seed, purify
from bench.dip.readout import ReadoutChoice, choose_readout
from bench.errors import BenchError


class DIPPreprocessor(PreprocessorDefense):
    """Deep Image Prior purification (eq. 12) in front of the detector; not differentiable (BPDA)."""

    name = "dip"
    differentiable = False

    def __init__(
        self,
        config: DIPConfig | None = None,
        seed: int = 0,
        quiet: bool = True,
        cache_size: int = 4096,
        device_type: str = "gpu",
        resample: bool = False,
    ) -> None:
        super().__init__(device_type=device_type)
        self.config = config if config is not None else DIPConfig()
        self.seed = int(seed)
        self.quiet = quiet
        self.cache_size = int(cache_size)
        self.readout_choice: ReadoutChoice | None = None
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.images_purified = 0
        self.seconds = 0.0
        if not isinstance(resample, bool):
            raise BenchError(f"{self.name}.resample", f"expected true or false, got {resample!r}")
        self.resample = resample
        self.calls = 0  # calls of `transform`; with `resample`, call k purifies with seed `sample_seed(k)`

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DIPPreprocessor:
        """From a suite's parameters: the `DIPConfig` fields plus `seed`, `quiet`, `cache_size` and `resample`."""
        params = dict(params or {})
        extra = {k: params.pop(k) for k in ("seed", "quiet", "cache_size", "resample") if k in params}
        return cls(DIPConfig.from_dict(params, "dip"), **extra)

    @property
    def readout(self) -> int | str:
        return self.config.readout

    def needs_calibration(self) -> bool:
        return self.config.readout == "auto"

    def sample_seed(self, k: int) -> int:
        """The seed of the k-th purification when resampling (EOT): a different DIP for every call."""
        return image_seed(self.seed, f"sample/{k}")

    def calibrate(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classifier: Callable[[torch.Tensor], torch.Tensor],
        threshold: float = 0.5,
    ) -> ReadoutChoice:
        """Resolve `readout: auto` on a held-out calibration subset (see `choose_readout`); returns the choice."""
        choice = choose_readout(images, labels, classifier, self.config, self.seed, threshold, self.quiet)
        self.config = self.config.model_copy(update={"readout": choice.iteration})
        self.readout_choice = choice
        self._cache.clear()
        return choice

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.readout == "auto":
            raise BenchError(
                f"{self.name}.readout", "readout is 'auto': call calibrate(images, labels, detector) before use"
            )
        x = x.detach()
        if self.resample:
            k, self.calls = self.calls, self.calls + 1
            if not len(x):
                return x.clone()
            res = purify(x.float(), self.config, self.sample_seed(k), quiet=self.quiet, device=self.device)
            assert res.purified is not None
            self.images_purified += len(x)
            self.seconds += res.seconds
            return res.purified.to(device=x.device, dtype=x.dtype)
        self.calls += 1
        keys = [image_key(im) for im in x]
        found = {k: self._cache[k] for k in keys if k in self._cache}
        missing = list(dict.fromkeys(k for k in keys if k not in found))  # duplicates purified once
        if missing:
            idx = [keys.index(k) for k in missing]
            res = purify(x[idx].float(), self.config, self.seed, quiet=self.quiet, keys=missing, device=self.device)
            assert res.purified is not None
            for j, k in enumerate(missing):
                found[k] = res.purified[j]
                self._remember(k, res.purified[j])
            self.images_purified += len(missing)
            self.seconds += res.seconds
        for k in keys:
            if k in self._cache:
                self._cache.move_to_end(k)
        if not keys:
            return x.clone()
        return torch.stack([found[k] for k in keys]).to(device=x.device, dtype=x.dtype)

    def _remember(self, key: str, image: torch.Tensor) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = image
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": type(self).__name__, "seed": self.seed, "resample": self.resample,
                               **self.config.describe()}
        if self.readout_choice is not None:
            out["readout_choice"] = self.readout_choice.as_dict()
        return out

    def __repr__(self) -> str:
        c = self.config
        return (
            f"DIPPreprocessor(name={self.name!r}, iterations={c.iterations}, readout={c.readout!r}, seed={self.seed})"
        )
