"""DIP trajectories (the paper's Fig. 6): P(real) of the purified image along the DIP iterations.

One panel per category (up to 4, in a 2 x 2 grid as in the paper): the raw P(real) at every
recorded iteration in grey, its centred moving average over a window of 10 iterations (as the paper,
which recorded every iteration; with a record every k iterations the window covers 10 / k records,
at least one) in red, the classification threshold as a dashed line and the readout iteration as a
vertical line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.results.atomic import atomic_savefig
from bench.settings import pyplot

MAX_PANELS = 4


def moving_average(values: np.ndarray, window: int = 10) -> np.ndarray:
    """Centred moving average; near the ends the window shrinks to the values that exist."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v.copy()
    half_lo, half_hi = (window - 1) // 2, window // 2
    csum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(v.size)
    lo = np.clip(idx - half_lo, 0, v.size)
    hi = np.clip(idx + half_hi + 1, 0, v.size)
    return (csum[hi] - csum[lo]) / (hi - lo)


def plot_trajectories(
    trajectories: dict[str, np.ndarray],
    iterations: np.ndarray,
    readout: int,
    threshold: float,
    path: Path,
    window: int = 10,
    title: str | None = None,
) -> Path:
    """Draw up to 4 trajectories (category name -> P(real) at each of `iterations`) to a PNG at `path`;
    `window`: the moving average's width in iterations."""
    if not trajectories:
        raise ValueError("no trajectories to plot")
    if len(trajectories) > MAX_PANELS:
        raise ValueError(f"at most {MAX_PANELS} categories per figure, got {len(trajectories)}")
    its = np.asarray(iterations).reshape(-1)
    spacing = float(np.median(np.diff(its))) if its.size > 1 else 1.0
    points = max(1, int(round(window / max(spacing, 1e-9))))
    plt = pyplot()
    n = len(trajectories)
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=120, squeeze=False)
    for ax, (name, values) in zip(axes.flat, trajectories.items(), strict=False):
        p = np.asarray(values, dtype=np.float64).reshape(-1)
        if p.shape != its.shape:
            raise ValueError(f"trajectory {name!r} has {p.size} values for {its.size} iterations")
        ax.plot(its, p, color="0.6", lw=0.8, label="P(real)")
        ax.plot(its, moving_average(p, points), color="tab:red", lw=1.4, label=f"mean over {window} iterations")
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax.axvline(readout, color="tab:blue", lw=1.0, label=f"readout {readout}")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(its.min() if its.size else 0, its.max() if its.size else 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("DIP iteration", fontsize=8)
        ax.set_ylabel("P(real)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_savefig(fig, path)
    finally:
        plt.close(fig)
    return path
