"""Figures: accuracy against attack strength per model (the paper's Fig. 3, the robust-accuracy and
security-evaluation curves), each line with its 95% interval as a band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.results.atomic import atomic_savefig
from bench.settings import pyplot


def plot_accuracy_curves(
    series: dict[str, tuple[list[float], list[float], list[float], list[float]]],
    xlabel: str,
    title: str,
    path: Path,
    markers: bool = True,
    steps: bool = False,
) -> None:
    """One line per series: (x values, accuracy, CI low, CI high), with the interval shaded; `steps` draws a
    step function (the value holds until the next x), as for a curve over thresholds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, (xs, acc, lo, hi) in series.items():
        order = np.argsort(xs)
        x = np.asarray(xs)[order]
        ax.plot(x, 100 * np.asarray(acc)[order], marker="o" if markers else None, label=name,
                drawstyle="steps-post" if steps else "default")
        ax.fill_between(x, 100 * np.asarray(lo)[order], 100 * np.asarray(hi)[order], alpha=0.15,
                        step="post" if steps else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy on perturbed fakes (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_savefig(fig, path)
    finally:
        plt.close(fig)
