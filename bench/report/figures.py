"""Figures: accuracy against attack strength per model (the paper's Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.atomic import atomic_savefig
from bench.settings import pyplot


def plot_accuracy_curves(
    series: dict[str, tuple[list[float], list[float], list[float], list[float]]],
    xlabel: str,
    title: str,
    path: Path,
) -> None:
    """One line per series: (x values, accuracy, CI low, CI high), with the interval shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, (xs, acc, lo, hi) in series.items():
        order = np.argsort(xs)
        x = np.asarray(xs)[order]
        ax.plot(x, 100 * np.asarray(acc)[order], marker="o", label=name)
        ax.fill_between(x, 100 * np.asarray(lo)[order], 100 * np.asarray(hi)[order], alpha=0.15)
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
