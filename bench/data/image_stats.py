"""Ten global image statistics, used to check that a dataset's label is not a global-statistics shortcut.

`global_image_stats` returns, per image: per-channel mean (3) and standard deviation (3), brightness
(mean Rec. 601 luma), mean HSV saturation, variance of the 4-neighbour Laplacian of the luma, and the
share of spectral energy (of the mean-removed luma) above half the Nyquist radius.
"""

from __future__ import annotations

import numpy as np

STAT_NAMES: tuple[str, ...] = (
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "brightness",
    "saturation",
    "laplacian_var",
    "hf_energy",
)


def _as_float(images: np.ndarray) -> np.ndarray:
    """N x H x W x 3 images (uint8 in [0, 255] or float in [0, 1]) as float64 in [0, 1]."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be N x H x W x 3, got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    return x.astype(np.float64)


def global_image_stats(images: np.ndarray, hf_radius: float = 0.5) -> np.ndarray:
    """An N x 10 float64 array of the statistics named in `STAT_NAMES`.

    `hf_radius` is the radius, as a fraction of the Nyquist frequency, above which energy counts as high.
    """
    x = _as_float(images)
    n, h, w, _ = x.shape
    mean = x.mean(axis=(1, 2))
    std = x.std(axis=(1, 2))
    luma = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    brightness = luma.mean(axis=(1, 2))
    cmax = x.max(axis=-1)
    cmin = x.min(axis=-1)
    sat = np.where(cmax > 0, (cmax - cmin) / np.maximum(cmax, 1e-12), 0.0).mean(axis=(1, 2))
    lap = luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] + luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] - 4 * luma[:, 1:-1, 1:-1]
    lap_var = lap.reshape(n, -1).var(axis=1)
    centred = luma - luma.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2) / 0.5  # 1.0 at the Nyquist frequency along an axis
    high = (radius > hf_radius)[None]
    total = power.reshape(n, -1).sum(axis=1)
    hf = np.where(total > 0, (power * high).reshape(n, -1).sum(axis=1) / np.maximum(total, 1e-12), 0.0)
    return np.stack([*mean.T, *std.T, brightness, sat, lap_var, hf], axis=1)
