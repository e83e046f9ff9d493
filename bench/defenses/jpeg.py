"""JPEG compression as an input defense: the worked example of a `PreprocessorDefense`.

Each image is quantised to 8 bits, JPEG-encoded by Pillow (libjpeg) at `quality` with the given
chroma subsampling, and decoded. JPEG is not differentiable (rounding, quantisation), so the class
declares `differentiable = False` and attacks get the straight-through BPDA gradient (the identity).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.defenses.builtin_params import check_jpeg
from bench.defenses.preprocessor import PreprocessorDefense

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit image file holds of a [0, 1] batch: rounded values, uint8, same layout."""
    return (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def jpeg_round_trip_uint8(u8_nchw: torch.Tensor, quality: int, subsampling: str = "4:2:0") -> torch.Tensor:
    """Encode and decode each image of a uint8 batch N x 3 x H x W with Pillow; uint8, on the CPU."""
    return _round_trip(u8_nchw.permute(0, 2, 3, 1).cpu().numpy(), quality, subsampling).permute(0, 3, 1, 2).contiguous()


def jpeg_round_trip(x: torch.Tensor, quality: int, subsampling: str = "4:2:0") -> torch.Tensor:
    """Encode and decode each image of a [0, 1] batch N x 3 x H x W; same shape, dtype and device."""
    out = _round_trip(to_uint8(x).permute(0, 2, 3, 1).cpu().numpy(), quality, subsampling)
    return out.permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255.0


def _round_trip(u8: np.ndarray, quality: int, subsampling: str) -> torch.Tensor:
    out = np.empty_like(u8)
    for i, img in enumerate(u8):
        buf = io.BytesIO()
        Image.fromarray(img, mode="RGB").save(
            buf, format="JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling], optimize=False
        )
        buf.seek(0)
        with Image.open(buf) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out)


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
