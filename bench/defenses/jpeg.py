"""JPEG compression as an input defense: the worked example of a `PreprocessorDefense`.

Each image is quantised to 8 bits, JPEG-encoded by Pillow (libjpeg) at `quality` with the given
chroma subsampling, and decoded (the codec of `bench.attacks.storage`, which the suite's storage uses
too). JPEG is not differentiable (rounding, quantisation), so the class declares `differentiable = False`
and attacks get the straight-through BPDA gradient (the identity).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.attacks.storage import jpeg_round_trip_uint8, to_uint8
from bench.defenses.builtin_params import check_jpeg
from bench.defenses.preprocessor import PreprocessorDefense


def jpeg_round_trip(x: torch.Tensor, quality: int, subsampling: str = "4:2:0") -> torch.Tensor:
    """Encode and decode each image of a [0, 1] batch N x 3 x H x W; same shape, dtype and device."""
    out = jpeg_round_trip_uint8(to_uint8(x), quality, subsampling)
    return out.to(device=x.device, dtype=x.dtype) / 255.0


class JpegDefense(PreprocessorDefense):
    """JPEG round trip at `quality` (1-95 sensible; lower removes more high-frequency perturbation)."""

    name = "jpeg"
    differentiable = False

    def __init__(self, quality: int = 75, subsampling: str = "4:2:0", device_type: str = "gpu") -> None:
        super().__init__(device_type=device_type)
        check_jpeg(quality, subsampling, self.name)
        self.quality = quality
        self.subsampling = subsampling

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return jpeg_round_trip(x, self.quality, self.subsampling)

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "quality": self.quality, "subsampling": self.subsampling}

    def __repr__(self) -> str:
        return f"JpegDefense(name={self.name!r}, quality={self.quality}, subsampling={self.subsampling!r})"
