"""JPEG compression as an input defense: the worked example of a `PreprocessorDefense`.

Each image is quantised to 8 bits, JPEG-encoded at `quality` (libjpeg through torchvision, 4:2:0
chroma subsampling) and decoded. JPEG is not differentiable (rounding, quantisation), so it declares
`differentiable = False` and attacks get the straight-through BPDA gradient (identity).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.io import decode_jpeg, encode_jpeg

from bench.defenses.preprocessor import PreprocessorDefense
from bench.errors import BenchError


def jpeg_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode each image of a [0, 1] batch N x 3 x H x W; same shape, dtype and device."""
    if x.shape[0] == 0:
        return x.clone()
    u8 = (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu()
    decoded = decode_jpeg(encode_jpeg(list(u8), quality=quality))
    return torch.stack(decoded).to(device=x.device, dtype=x.dtype) / 255.0


class JpegDefense(PreprocessorDefense):
    """JPEG round trip at `quality` (1-100; lower removes more high-frequency perturbation)."""

    name = "jpeg"
    differentiable = False

    def __init__(self, quality: int = 75, device_type: str = "gpu") -> None:
        super().__init__(device_type=device_type)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise BenchError(self.name, f"quality must be an integer in [1, 100], got {quality!r}")
        self.quality = quality

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return jpeg_round_trip(x, self.quality)

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "quality": self.quality}

    def __repr__(self) -> str:
        return f"JpegDefense(name={self.name!r}, quality={self.quality})"
