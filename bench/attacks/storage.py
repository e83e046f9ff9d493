"""What an image file holds, and the layer through which attacks see it.

Every adversarial image is delivered as a file and scored as the suite stores it (`evaluation.storage`): 8-bit
PNG (each value rounded to k/255) or JPEG at `jpeg_quality` (the rounded image through Pillow's encoder and
decoder, 4:2:0 chroma subsampling). This module is the one definition of that:

- `Storage`: the spec (`of(evaluation)`), `store(u8)` (the file's content, uint8) and `key()` (what cell keys
  hash); `quantise(adv, storage, quality)` is the same as a function.
- `StorageLayer`: a network layer whose forward is exactly the stored image (Pillow's codec, not an
  approximation) and whose backward is a model of the codec's derivative, `real + (approx - approx.detach())`:
  straight-through (identity) for every rounding (the 8-bit values; JPEG's DCT coefficients divided by their
  quantisation step), and the exact derivative of the rest of JPEG, which is linear: RGB to YCbCr, 4:2:0 chroma
  subsampling (libjpeg averages each 2 x 2 block of Cb and Cr), the decoder's upsampling (libjpeg's "fancy"
  triangle filter, the bilinear interpolation) and back to RGB (`jpeg_linear_part`). So the gradient knows that
  storage erases fine chroma detail, and passes everything else.
  Why not kornia's differentiable JPEG (`kornia.enhance.jpeg_codec_differentiable`, Reich et al., WACV 2024):
  it rounds with round(u) + (u - round(u))^3, whose derivative 3 (u - round(u))^2 is 0 to 0.75 per DCT
  coefficient depending on where it sits against its quantisation step (0.25 on average): a damped, noisy
  weighting of the gradient. Measured at JPEG q95 on 40 detected fakes (`benchmarks/storage_gradient.py`), FGSM
  at eps 4/255 made through kornia's gradient turned 20 of them after storage on a ResNet-18 at 32 px, FGSM on
  the bare detector 18, FGSM through this layer 26 (at 12/255 on the tiny test detector: 10, 22 and 23).
  Neither model is the codec (kornia's forward differs from Pillow's by a median L2 of about 0.4 at 32 px, this
  one's by 0.6, while storage itself moves a clean image by 0.9 to 1.6), so success is always judged on
  Pillow's output.
- `stored_detector(det, storage)`: the detector with that layer first, as a preprocessor defense is put first
  (`bench.defenses.apply.preprocessed`). Native attacks call the detector, ART and Foolbox wrap its `.net`, user
  attacks call it: all differentiate through the storage, and every decision they take on its output (an
  iterate's success, a minimum-norm search's acceptance of a norm, a restart, the ensemble's worst case) is taken
  on the stored image.

With no gradient requested (predictions) the layer runs the codec only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from bench.attacks.storage_spec import storage_key  # noqa: F401  (re-exported: one key, torch-free)
from bench.defenses.base import as_detector
from bench.models.detector import Detector

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
STORED_SUBSAMPLING = "4:2:0"  # Pillow's default at quality < 100, and kornia's differentiable codec's


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit image file holds of a [0, 1] batch: rounded values, uint8, same layout."""
    return (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def jpeg_round_trip_uint8(u8_nchw: torch.Tensor, quality: int, subsampling: str = STORED_SUBSAMPLING) -> torch.Tensor:
    """Encode and decode each image of a uint8 batch N x 3 x H x W with Pillow; uint8, on the CPU."""
    u8 = u8_nchw.permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(u8)
    for i, img in enumerate(u8):
        buf = io.BytesIO()
        Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=quality,
                                              subsampling=SUBSAMPLING[subsampling], optimize=False)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Storage:
    """How the suite stores an image: "png" (8-bit rounding) or "jpeg" at `quality` (rounding, then JPEG)."""

    format: str = "png"
    quality: int | None = None

    @classmethod
    def of(cls, evaluation: Any) -> Storage:
        """The storage of a suite's `evaluation` section."""
        jpeg = evaluation.storage == "jpeg"
        return cls(evaluation.storage, int(evaluation.jpeg_quality) if jpeg else None)

    def key(self) -> list:
        """What a cell key hashes of the storage: [format, quality or None]."""
        return [self.format, self.quality]

    def store(self, u8: torch.Tensor) -> torch.Tensor:
        """The file's content of a delivered uint8 batch (NCHW): itself for PNG, Pillow's round trip for JPEG."""
        return u8.cpu() if self.format == "png" else jpeg_round_trip_uint8(u8, int(self.quality or 95))

    def stored(self, x: torch.Tensor) -> torch.Tensor:
        """The stored image of a [0, 1] batch, as [0, 1] floats of x's dtype on x's device (no gradient)."""
        return self.store(to_uint8(x)).to(device=x.device, dtype=x.dtype) / 255.0

    def describe(self) -> str:
        return f"JPEG q{self.quality}" if self.format == "jpeg" else "8-bit PNG"


def quantise(adv: torch.Tensor, storage: str, jpeg_quality: int) -> torch.Tensor:
    """What an image file holds of a [0, 1] batch: 8-bit values, or their JPEG round trip. Returns uint8 NCHW."""
    return Storage(storage, jpeg_quality if storage == "jpeg" else None).store(to_uint8(adv))


# JFIF's colour transform (ITU-R BT.601, full range), the chroma rows and the inverse's chroma columns: the
# luma and the offsets of 0.5 pass through the chroma path unchanged, so only these enter it
RGB_TO_CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))  # Cb, Cr
CHROMA_TO_RGB = ((0.0, 1.402), (-0.344136, -0.714136), (1.772, 0.0))


def jpeg_linear_part(x: torch.Tensor) -> torch.Tensor:
    """JPEG without its roundings: the chroma (Cb, Cr) averaged over 2 x 2 blocks and interpolated back (bilinear,
    as libjpeg's upsampling), the luma kept; in RGB. Linear and differentiable: the storage layer's gradient
    model for JPEG."""
    to_c = torch.tensor(RGB_TO_CHROMA, device=x.device, dtype=x.dtype)
    from_c = torch.tensor(CHROMA_TO_RGB, device=x.device, dtype=x.dtype)
    chroma = torch.einsum("kc,nchw->nkhw", to_c, x)
    low = F.interpolate(F.avg_pool2d(chroma, 2, ceil_mode=True), size=x.shape[-2:], mode="bilinear",
                        align_corners=False)
    return x + torch.einsum("ck,nkhw->nchw", from_c, low - chroma)


class StorageLayer(nn.Module):
    """Forward: the stored image, exactly (`Storage.stored`). Backward: straight-through for the roundings, the
    exact derivative of JPEG's linear part (`jpeg_linear_part`) when the storage is JPEG (see the module doc).

    `syncs_host`: the forward reads the batch back to the CPU (Pillow), so it cannot be captured in a CUDA graph.
    """

    syncs_host = True

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = self.storage.stored(x)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return real
        rounded = x + (torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0 - x).detach()  # straight-through rounding
        approx = rounded if self.storage.format == "png" else self.approximation(rounded)
        return real + (approx - approx.detach())  # exactly `real` (a - a is 0), with approx's gradient

    def approximation(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable model of the stored image whose gradient the layer passes back (JPEG only)."""
        return jpeg_linear_part(x)

    def extra_repr(self) -> str:
        return self.storage.describe()


def stored_detector(det: Detector, storage: Storage) -> Detector:
    """`det` behind its input's storage: takes [0, 1] images, scores what the file holds (see the module doc)."""
    out = as_detector(nn.Sequential(StorageLayer(storage), det), like=det).eval()
    out.name = det.name
    return out


def has_host_step(det: nn.Module) -> bool:
    """Whether a network contains a layer that reads its input back to the CPU (no CUDA graph capture)."""
    return any(getattr(m, "syncs_host", False) for m in det.modules())
