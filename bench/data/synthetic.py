"""`synthetic-faces`: the embedded default dataset, procedurally rendered faces and face swaps.

Real images (label 1) are aligned, tightly cropped face renders (as in CelebA-style crops): a
background (two-colour gradient plus a low-frequency sinusoidal texture), shoulders, a neck, a head
ellipse (small pose jitter, skin tone drawn from a dark-to-light palette plus a colour jitter, radial
shading and a highlight), hair (back volume, a wavy fringe, or bald), eyes (white, iris, pupil, lid
shadow), brows, nose shading and nostrils, and a mouth. Every identity parameter is drawn per image.
A camera pipeline then applies a lighting gradient, contrast, brightness, colour cast and gamma, a
Gaussian blur (sigma 0 to 1 px at 32 x 32, scaled with the size above 32) and noise (1 to 9 / 255).

Fake images (label 0) are face swaps. A target face is rendered as above; a second identity (its own
skin tone, partly colour-corrected towards the target's, eyes, brows, nose and mouth, no hair) is
rendered at the target's pose plus a small misalignment (shift, scale, rotation), given a tone
mismatch (brighter, random colour shift, its own lighting direction), resampled through 40-65 % of
the side and back, sharpened (unsharp mask), and alpha-blended into the inner face (brows to mouth)
through a soft elliptical mask whose boundary carries a blending seam, a bright ring. Then:

- each channel's mean and standard deviation are reset to the target's, so the swap changes no
  first- or second-order global colour statistic;
- the camera pipeline runs with the same parameter distributions as for reals, except that the blur
  of each fake is lowered (never raised) so its Laplacian energy is closest to that of its unswapped
  target: the softer swapped region must not make fakes globally smoother.

So the cues are local (seam ring, tone step, softer and ghosted inner features), and ten global
statistics (`bench.data.image_stats`: channel means and stds, brightness, saturation, Laplacian
variance, high-frequency energy) do not separate the classes: a standardised logistic regression on
them scores an AUROC of at most 0.70 (about 0.60 at 64 x 64 and 0.65 at 32 x 32; checked in
`tests/test_synthetic.py`). The seam and tone cues survive a Gaussian blur of 1 px.

Determinism: image i depends only on (seed, i, size): its parameters and noise come from
`SeedSequence([seed, i])`, so a larger `n` extends a smaller one. Labels come in pairs (2k, 2k + 1), one
fake and one real in an order drawn per pair, so every even `n` is exactly balanced and interleaved.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench import FAKE, REAL
from bench.errors import BenchError

DATASET_NAME = "synthetic-faces"
MIN_SIZE = 24
_N_UNIFORMS = 160
_CHUNK = 256
_RESAMPLE_FRACTIONS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65)


def synth_id(i: int) -> str:
    return f"synth-{i:06d}"


def synth_label(seed: int, i: int) -> int:
    """Label of image i: pairs (2k, 2k + 1) hold one fake and one real, in an order drawn per pair."""
    flip = int(np.random.default_rng(np.random.SeedSequence([seed, i // 2, 0x5A17])).integers(2))
    return FAKE if (i % 2) ^ flip == 0 else REAL


class _Draws:
    """Hands out columns of an N x K uniform matrix as parameter vectors of shape (N, 1, 1)."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = u
        self.col = 0

    def next(self) -> np.ndarray:
        if self.col >= self.u.shape[1]:
            raise RuntimeError("synthetic generator ran out of parameter draws")
        c = self.u[:, self.col]
        self.col += 1
        return c.reshape(-1, 1, 1).astype(np.float32)

    def uniform(self, lo: float, hi: float) -> np.ndarray:
        return lo + (hi - lo) * self.next()

    def sign(self) -> np.ndarray:
        return np.where(self.next() < 0.5, -1.0, 1.0).astype(np.float32)

    def colour(self, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """An (N, 3, 1, 1) colour."""
        return np.stack([self.uniform(lo, hi) for _ in range(3)], axis=1)

    def choice(self, palette: np.ndarray) -> np.ndarray:
        """An (N, 3, 1, 1) colour picked from a (P, 3) palette."""
        k = np.minimum((self.next()[:, 0, 0] * len(palette)).astype(int), len(palette) - 1)
        return palette[k].reshape(-1, 3, 1, 1).astype(np.float32)


_HAIR = np.array(
    [
        [0.07, 0.05, 0.04],
        [0.22, 0.13, 0.07],
        [0.42, 0.27, 0.14],
        [0.78, 0.62, 0.35],
        [0.55, 0.22, 0.10],
        [0.60, 0.58, 0.56],
        [0.15, 0.12, 0.12],
    ]
)
_IRIS = np.array([[0.30, 0.18, 0.08], [0.20, 0.35, 0.60], [0.25, 0.42, 0.25], [0.10, 0.07, 0.05]])


def _identity(d: _Draws) -> dict[str, np.ndarray]:
    """Per-identity appearance: skin, eyes, brows, nose, mouth, hair."""
    t = d.next()[:, :, :, None].transpose(0, 3, 1, 2)  # (N, 1, 1, 1)
    dark = np.array([0.33, 0.20, 0.13], np.float32).reshape(1, 3, 1, 1)
    light = np.array([0.97, 0.82, 0.71], np.float32).reshape(1, 3, 1, 1)
    skin = dark + (light - dark) * t + d.colour(-0.07, 0.07)
    p = {
        "skin": np.clip(skin, 0.05, 1.0),
        "shade": d.uniform(0.10, 0.35),
        "ex": d.uniform(0.30, 0.42),
        "ey": d.uniform(-0.24, -0.08),
        "erx": d.uniform(0.13, 0.19),
        "ery_f": d.uniform(0.35, 0.60),
        "iris_f": d.uniform(0.45, 0.70),
        "gaze": d.uniform(-0.04, 0.04),
        "iris": d.choice(_IRIS) + d.colour(-0.05, 0.05),
        "brow_off": d.uniform(0.12, 0.20),
        "brow_w": d.uniform(1.0, 1.5),
        "brow_t": d.uniform(0.035, 0.07),
        "brow_dark": d.uniform(0.5, 0.9),
        "nose_y": d.uniform(0.12, 0.25),
        "nose_w": d.uniform(0.08, 0.15),
        "nose_l": d.uniform(0.12, 0.25),
        "nose_s": d.uniform(0.10, 0.30),
        "mouth_y": d.uniform(0.42, 0.56),
        "mouth_w": d.uniform(0.20, 0.36),
        "mouth_h": d.uniform(0.05, 0.11),
        "lip": d.colour(0.45, 0.75) * np.array([1.0, 0.55, 0.6], np.float32).reshape(1, 3, 1, 1),
        "hair": d.choice(_HAIR) + d.colour(-0.04, 0.04),
        "hairline": d.uniform(-0.60, -0.15),
        "bald": d.next(),
        "hair_vol": d.uniform(1.02, 1.20),
        "hair_len": d.uniform(-0.3, 1.3),
        "wave_a": d.uniform(0.0, 0.12),
        "wave_f": d.uniform(2.0, 9.0),
        "wave_p": d.uniform(0.0, 6.3),
    }
    p["hairline"] = np.where(p["bald"] < 0.1, -1.5, p["hairline"]).astype(np.float32)
    return p


def _pose(d: _Draws) -> dict[str, np.ndarray]:
    return {
        "cx": d.uniform(-0.03, 0.03),
        "cy": d.uniform(0.08, 0.14),
        "rx": d.uniform(0.72, 0.78),
        "ry_f": d.uniform(1.12, 1.20),
        "rot": d.uniform(-0.06, 0.06),
    }


def _scene(d: _Draws) -> dict[str, np.ndarray]:
    return {
        "bg1": d.colour(),
        "bg2": d.colour(),
        "bg_dir": d.uniform(0.0, 6.3),
        "tex_a": d.uniform(0.0, 0.10),
        "tex_f": d.uniform(1.5, 7.0),
        "tex_d": d.uniform(0.0, 6.3),
        "tex_p": d.uniform(0.0, 6.3),
        "tex2_a": d.uniform(0.0, 0.06),
        "tex2_f": d.uniform(1.0, 3.0),
        "tex2_d": d.uniform(0.0, 6.3),
        "cloth": d.colour(0.05, 0.9),
    }


def _post(d: _Draws) -> dict[str, np.ndarray]:
    return {
        "light_dir": d.uniform(0.0, 6.3),
        "light": d.uniform(0.0, 0.40),
        "contrast": d.uniform(0.70, 1.25),
        "bright": d.uniform(-0.08, 0.08),
        "cast": d.colour(-0.06, 0.06),
        "gamma": d.uniform(0.8, 1.25),
        "blur": d.uniform(0.0, 1.0),
        "noise": d.uniform(1.0, 9.0),
    }


def _swap(d: _Draws) -> dict[str, np.ndarray]:
    tone_dir = d.colour(-1.0, 1.0)
    tone_dir = tone_dir / np.maximum(np.linalg.norm(tone_dir, axis=1, keepdims=True), 1e-3)
    return {
        "dx": d.uniform(0.02, 0.07) * d.sign(),
        "dy": d.uniform(0.02, 0.07) * d.sign(),
        "scale": d.uniform(0.92, 1.08),
        "drot": d.uniform(-0.08, 0.08),
        "skin_mix": d.uniform(0.25, 0.6),
        "tone": tone_dir * d.uniform(0.10, 0.18)[:, :, :, None].transpose(0, 3, 1, 2),
        "gain": d.uniform(1.06, 1.15),
        "resample": d.next(),
        "mask_c": d.uniform(0.0, 0.12),
        "mask_a": d.uniform(0.64, 0.74),
        "mask_b": d.uniform(0.68, 0.78),
        "soft": d.uniform(0.5, 1.0),
        "ring": d.uniform(0.35, 0.55),
        "ring_w": d.uniform(0.8, 1.2),
        "dlight_dir": d.uniform(0.0, 6.3),
        "dlight": d.uniform(0.05, 0.20),
        "sharpen": d.uniform(0.5, 2.0),
    }


def _cover(sd_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (positive inside)."""
    return np.clip(sd_px + 0.5, 0.0, 1.0)


def _ellipse_sd(u, v, a, b, ra, rb, px_u, px_v):
    """Approximate signed distance (pixels) to an ellipse centred (a, b) with radii (ra, rb) in face units."""
    d = np.sqrt(((u - a) / ra) ** 2 + ((v - b) / rb) ** 2)
    return (1.0 - d) * np.minimum(ra * px_u, rb * px_v)


def _lerp(img: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return img + (colour - img) * alpha[:, None]


def _face_coords(pose, grid, size):
    """Face-local coordinates u, v (head ellipse = unit circle) and pixels per face unit."""
    x, y = grid
    ry = pose["rx"] * pose["ry_f"]
    c, s = np.cos(pose["rot"]), np.sin(pose["rot"])
    xl = c * (x - pose["cx"]) + s * (y - pose["cy"])
    yl = -s * (x - pose["cx"]) + c * (y - pose["cy"])
    return xl / pose["rx"], yl / ry, pose["rx"] * size / 2.0, ry * size / 2.0


def _render_face(idn, pose, size, grid, base: np.ndarray | None, scene=None) -> np.ndarray:
    """Draw a face (over a scene, or over `base` when given, then without hair or body) as N x 3 x S x S."""
    u, v, pu, pv = _face_coords(pose, grid, size)
    x, y = grid
    n = len(pose["rx"])
    skin = idn["skin"]
    if base is None:
        ang = scene["bg_dir"]
        t = np.clip(0.5 + 0.5 * (x * np.cos(ang) + y * np.sin(ang)), 0, 1)
        img = scene["bg1"] + (scene["bg2"] - scene["bg1"]) * t[:, None]
        tex = scene["tex_a"] * np.sin(
            scene["tex_f"] * (x * np.cos(scene["tex_d"]) + y * np.sin(scene["tex_d"])) * np.pi + scene["tex_p"]
        ) + scene["tex2_a"] * np.sin(
            scene["tex2_f"] * (x * np.cos(scene["tex2_d"]) + y * np.sin(scene["tex2_d"])) * np.pi
        )
        img = img + tex[:, None]
        hair_back = _cover(_ellipse_sd(u, v, 0.0, -0.12, idn["hair_vol"], idn["hair_vol"] * 0.98, pu, pv))
        hair_back = hair_back * _cover((idn["hair_len"] - v) * pv) * (idn["bald"] >= 0.1)
        img = _lerp(img, idn["hair"] * 0.85, hair_back)
        neck = np.minimum(_cover((0.45 - np.abs(u)) * pu), _cover((v - 0.4) * pv))
        img = _lerp(img, skin * 0.78, neck)
        cloth = _cover(_ellipse_sd(u, v, 0.0, 2.0, 2.4, 0.95, pu, pv))
        img = _lerp(img, scene["cloth"], cloth)
    else:
        img = base.copy()
    head = _cover(_ellipse_sd(u, v, 0.0, 0.0, 1.0, 1.0, pu, pv))
    r2 = u**2 + v**2
    highlight = 0.06 * np.exp(-((u + 0.2) ** 2 + (v + 0.3) ** 2) * 4)
    shaded = skin * (1.0 - (idn["shade"] * r2)[:, None] + highlight[:, None])
    img = img + (shaded - img) * head[:, None]
    if base is None:
        fringe = idn["hairline"] + idn["wave_a"] * np.sin(idn["wave_f"] * u + idn["wave_p"])
        img = _lerp(img, idn["hair"], head * _cover((fringe - v) * pv))
    ex, ey, erx = idn["ex"], idn["ey"], idn["erx"]
    ery = erx * idn["ery_f"] * pu / pv
    for side in (-1.0, 1.0):
        cx_e = side * ex
        lid = _cover(_ellipse_sd(u, v, cx_e, ey - 0.02, erx * 1.25, ery * 1.5, pu, pv))
        img = _lerp(img, skin * 0.72, lid)
        white = _cover(_ellipse_sd(u, v, cx_e, ey, erx, ery, pu, pv))
        img = _lerp(img, np.full((1, 3, 1, 1), 0.93, np.float32), white)
        ir = ery * idn["iris_f"] * 1.3
        iris = _cover(_ellipse_sd(u, v, cx_e + idn["gaze"], ey, ir * pv / pu, ir, pu, pv)) * white
        img = _lerp(img, idn["iris"], iris)
        pupil = _cover(_ellipse_sd(u, v, cx_e + idn["gaze"], ey, 0.45 * ir * pv / pu, 0.45 * ir, pu, pv)) * white
        img = _lerp(img, np.full((1, 3, 1, 1), 0.03, np.float32), pupil)
        brow = _cover(_ellipse_sd(u, v, cx_e, ey - idn["brow_off"] - ery, erx * idn["brow_w"], idn["brow_t"], pu, pv))
        img = _lerp(img, idn["hair"] * idn["brow_dark"][:, None], brow)
    nose = _cover(_ellipse_sd(u, v, 0.0, idn["nose_y"], idn["nose_w"], idn["nose_l"], pu, pv))
    img = img * (1.0 - (idn["nose_s"] * 0.6 * nose)[:, None])
    for side in (-1.0, 1.0):
        nostril = _cover(
            _ellipse_sd(u, v, side * idn["nose_w"] * 0.6, idn["nose_y"] + idn["nose_l"] * 0.75, 0.045, 0.03, pu, pv)
        )
        img = _lerp(img, skin * 0.35, nostril * 0.8)
    mouth = _cover(_ellipse_sd(u, v, 0.0, idn["mouth_y"], idn["mouth_w"], idn["mouth_h"], pu, pv))
    img = _lerp(img, idn["lip"] * skin * 1.3, mouth)
    line = _cover(_ellipse_sd(u, v, 0.0, idn["mouth_y"], idn["mouth_w"] * 0.92, 0.018, pu, pv))
    img = _lerp(img, skin * 0.3, line)
    assert img.shape == (n, 3, size, size)
    return img


@lru_cache(maxsize=64)
def _resample_matrix(size: int, low: int) -> np.ndarray:
    """S x S matrix: area-downsample to `low` pixels, then bilinear-upsample back (align_corners=False)."""
    down = np.zeros((low, size))
    edges = np.linspace(0.0, size, low + 1)
    for j in range(low):
        for k in range(size):
            down[j, k] = max(0.0, min(edges[j + 1], k + 1) - max(edges[j], k))
    down /= down.sum(axis=1, keepdims=True)
    up = np.zeros((size, low))
    pos = (np.arange(size) + 0.5) * low / size - 0.5
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    for k in range(size):
        a, b = np.clip(lo[k], 0, low - 1), np.clip(lo[k] + 1, 0, low - 1)
        up[k, a] += 1 - frac[k]
        up[k, b] += frac[k]
    return (up @ down).astype(np.float32)


def _blur_matrices(sigma: np.ndarray, size: int) -> np.ndarray:
    """N x S x S Gaussian blur matrices (rows renormalised at the borders); sigma in pixels."""
    diff = np.arange(size)[:, None] - np.arange(size)[None, :]
    s = np.maximum(sigma.reshape(-1, 1, 1), 1e-3)
    k = np.exp(-(diff[None] ** 2) / (2 * s**2))
    return (k / k.sum(axis=2, keepdims=True)).astype(np.float32)


def _apply_separable(m: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Apply per-image S x S matrices along both image axes of N x 3 x S x S images."""
    return m[:, None] @ img @ np.swapaxes(m, 1, 2)[:, None]


def _render_chunk(indices: range, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(indices)
    uni = np.empty((n, _N_UNIFORMS))
    noise = np.empty((n, 3, size, size), np.float32)
    labels = np.empty(n, np.int64)
    for j, i in enumerate(indices):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        uni[j] = rng.random(_N_UNIFORMS)
        noise[j] = rng.standard_normal((3, size, size), dtype=np.float32)
        labels[j] = synth_label(seed, i)
    d = _Draws(uni)
    idn, pose, scene, post = _identity(d), _pose(d), _scene(d), _post(d)
    donor, swap = _identity(d), _swap(d)

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    grid = (coords[None, None, :], coords[None, :, None])
    img = _render_face(idn, pose, size, grid, None, scene)
    sigma = post["blur"][:, 0, 0] * max(1.0, size / 32.0)

    fake = np.nonzero(labels == FAKE)[0]
    if len(fake):
        fpost = _take(post, fake)
        target = _photometric(img[fake], fpost, grid)
        swapped = _face_swap(
            img[fake], _take(idn, fake), _take(pose, fake), _take(donor, fake), _take(swap, fake), size, grid
        )
        sigma[fake] = _match_sharpness(_photometric(swapped, fpost, grid), target, sigma[fake])
        img[fake] = swapped

    img = _photometric(img, post, grid)
    img = _apply_separable(_blur_matrices(sigma, size), img)
    img = img + noise * (post["noise"][:, None] / 255.0)
    out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return out, labels


def _photometric(img: np.ndarray, post: dict[str, np.ndarray], grid) -> np.ndarray:
    """The camera's lighting gradient, contrast, brightness, colour cast and gamma."""
    x, y = grid
    lx = x * np.cos(post["light_dir"]) + y * np.sin(post["light_dir"])
    img = np.clip(img * (1.0 + post["light"] * lx)[:, None], 0.0, 1.0)
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = (img - mean) * post["contrast"][:, None] + mean + post["bright"][:, None] + post["cast"]
    return np.clip(img, 0.0, 1.0) ** post["gamma"][:, None]


def _laplacian_energy(img: np.ndarray) -> np.ndarray:
    luma = img[:, 0] * 0.299 + img[:, 1] * 0.587 + img[:, 2] * 0.114
    lap = luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] + luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] - 4 * luma[:, 1:-1, 1:-1]
    return (lap**2).mean(axis=(1, 2))


def _match_sharpness(fake: np.ndarray, target: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per fake, the global blur (at most its drawn `sigma`) whose Laplacian energy is closest to what the
    unswapped target would have had: the softer swapped region must not make fakes globally smoother."""
    size = fake.shape[-1]
    goal = _laplacian_energy(_apply_separable(_blur_matrices(sigma, size), target))
    factors = np.linspace(1.0, 0.0, 6)
    energy = np.stack([_laplacian_energy(_apply_separable(_blur_matrices(sigma * f, size), fake)) for f in factors])
    best = np.abs(np.log(energy + 1e-9) - np.log(goal + 1e-9)[None]).argmin(axis=0)
    return (sigma * factors[best]).astype(np.float32)


def _take(p: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in p.items()}


def _face_swap(target, idn, pose, donor, swap, size, grid) -> np.ndarray:
    """Blend a second identity's inner face, resampled, tone-shifted and misaligned, into `target`."""
    dpose = dict(pose)
    dpose["cx"] = pose["cx"] + swap["dx"] * pose["rx"]
    dpose["cy"] = pose["cy"] + swap["dy"] * pose["rx"]
    dpose["rx"] = pose["rx"] * swap["scale"]
    dpose["rot"] = pose["rot"] + swap["drot"]
    donor = dict(donor)
    donor["skin"] = idn["skin"] + (donor["skin"] - idn["skin"]) * swap["skin_mix"][:, None]
    src = _render_face(donor, dpose, size, grid, target)
    u, v, pu, pv = _face_coords(dpose, grid, size)
    scale = max(size / 64.0, 1.0)
    lx = u * np.cos(swap["dlight_dir"]) + v * np.sin(swap["dlight_dir"])
    src = src * (1.0 + swap["tone"]) * swap["gain"][:, None] * (1.0 + swap["dlight"] * lx)[:, None]
    k = np.minimum((swap["resample"][:, 0, 0] * len(_RESAMPLE_FRACTIONS)).astype(int), len(_RESAMPLE_FRACTIONS) - 1)
    lows = np.maximum(np.round(np.asarray(_RESAMPLE_FRACTIONS)[k] * size).astype(int), 6)
    res = np.stack([_resample_matrix(size, int(lo)) for lo in lows])
    src = _apply_separable(res, src)
    # the swap pipeline sharpens its upsampled output (unsharp mask), leaving halos
    unsharp = _blur_matrices(np.full(len(src), scale, np.float32), size)
    src = src + swap["sharpen"][:, None] * (src - _apply_separable(unsharp, src))
    sd = _ellipse_sd(u, v, 0.0, swap["mask_c"], swap["mask_a"], swap["mask_b"], pu, pv)
    alpha = np.clip(sd / (swap["soft"] * 2.0 * scale) + 0.5, 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)
    out = target + (src - target) * alpha[:, None]
    ring = np.exp(-((sd / (swap["ring_w"] * 2.0 * scale)) ** 2))
    out = out * (1.0 + swap["ring"] * ring)[:, None]
    # keep each channel's global mean and std those of the target photo, so the swap is only a local cue
    t_mean, t_std = target.mean(axis=(2, 3), keepdims=True), target.std(axis=(2, 3), keepdims=True)
    o_mean, o_std = out.mean(axis=(2, 3), keepdims=True), out.std(axis=(2, 3), keepdims=True)
    return (out - o_mean) * (t_std / np.maximum(o_std, 1e-6)) + t_mean


def generate_synthetic_faces(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`n` images (uint8 N x size x size x 3), labels (int64, fake = 0, real = 1) and ids `synth-000123`."""
    if n < 0:
        raise BenchError("data.synthetic.n", f"expected a non-negative image count, got {n}")
    if size < MIN_SIZE:
        raise BenchError("data.synthetic.size", f"expected a size of at least {MIN_SIZE}, got {size}")
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for start in range(0, n, _CHUNK):
        idx = range(start, min(n, start + _CHUNK))
        images[start : idx.stop], labels[start : idx.stop] = _render_chunk(idx, size, seed)
    return images, labels, [synth_id(i) for i in range(n)]


def write_image_folder(out_dir: Path, n: int, size: int, seed: int) -> int:
    """Write `n` synthetic images as PNGs under `out_dir/real` and `out_dir/fake`; returns the count.

    Refuses an existing non-empty `out_dir`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BenchError(str(out_dir), "the output folder exists and is not empty; choose a new or empty folder")
    images, labels, ids = generate_synthetic_faces(n, size=size, seed=seed)
    for name in ("real", "fake"):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    for img, label, ident in zip(images, labels, ids, strict=True):
        sub = "real" if int(label) == REAL else "fake"
        Image.fromarray(img).save(out_dir / sub / f"{ident}.png")
    return len(ids)
