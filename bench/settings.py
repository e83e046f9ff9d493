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


# What a worker process on another node needs to see as this process does (paths made absolute).
WORKER_VARIABLES = ("BENCH_CACHE", "BENCH_CUDA_GRAPHS", "ART_DATA_PATH", "MPLCONFIGDIR")
_PATH_VARIABLES = ("BENCH_CACHE", "ART_DATA_PATH", "MPLCONFIGDIR")


def worker_environment() -> dict[str, str]:
    """The variables the harness and its toolkits read, as set in this process, for remote workers."""
    env = {}
    for name in WORKER_VARIABLES:
        if name in os.environ:
            value = os.environ[name]
            env[name] = str(Path(value).resolve()) if name in _PATH_VARIABLES else value
    return env


def quiet_ray() -> None:
    """Ray's token authentication (which writes a token under the user's home) and its usage reporting stay
    off unless the user's environment asks for them (RAY_AUTH_MODE=token, RAY_USAGE_STATS_ENABLED=1)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def local_ray_priority() -> None:
    """Workers of a local Ray run at the driver's priority: Ray's default (RAY_worker_niceness=15) gives a
    suite's cells the leftovers of a shared machine."""
    os.environ.setdefault("RAY_worker_niceness", "0")
