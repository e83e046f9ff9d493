"""Every environment variable the harness reads, read here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "BENCH_HOME"


def default_home() -> Path:
    """Where checkpoints, adversarial examples and the results database live: $BENCH_HOME or `.bench`."""
    return Path(os.environ.get(HOME_VARIABLE, ".bench"))


def cuda_graphs_enabled() -> bool:
    """Native CW-L2 replays CUDA graphs unless BENCH_CUDA_GRAPHS=0."""
    return os.environ.get("BENCH_CUDA_GRAPHS", "1") != "0"


def cache_dir() -> Path:
    """Where third-party tools keep their files: $BENCH_CACHE or `.cache/bench`."""
    return Path(os.environ.get("BENCH_CACHE", ".cache/bench"))


def configure_art() -> None:
    """ART writes a config under $HOME unless ART_DATA_PATH points elsewhere; keep it in our cache."""
    os.environ.setdefault("ART_DATA_PATH", str(cache_dir() / "art"))


def configure_matplotlib(home: Path | str | None = None) -> None:
    """matplotlib's cache under the bench home (`--home`, else $BENCH_HOME or `.bench`) unless MPLCONFIGDIR
    is set; never the user's home."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(home or default_home()) / "matplotlib"))


def pyplot():
    """matplotlib's pyplot on the Agg backend, its cache under the bench home (not the user's home)."""
    configure_matplotlib()
    import matplotlib  # lazy: matplotlib is needed only when figures are drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    return plt
