"""What a result was computed with: git commit, package versions, device."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "adversarial-robustness-toolbox", "foolbox", "numpy", "bench")


# The checkout bench runs from (the folder above the package): its commit is what a run records, whatever the
# working directory of the process (a run started elsewhere used to record `unknown`).
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # safe.directory: a checkout owned by another user (a container, a shared volume) is still read
    return subprocess.run(["git", "-c", f"safe.directory={cwd}", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=10)


def git_commit(cwd: Path | None = None) -> str:
    """The short commit of bench's own checkout (or of `cwd`), `-dirty` when tracked files changed; `unknown`
    when bench does not run from a git checkout (an installed wheel) or git is missing."""
    root = Path(cwd) if cwd is not None else SOURCE_ROOT
    try:
        commit = _git(["rev-parse", "--short=12", "HEAD"], root).stdout.strip() or "unknown"
        if commit == "unknown":
            return commit
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], root).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def is_ancestor(older: str, newer: str, cwd: Path | None = None) -> bool | None:
    """Whether commit `older` is an ancestor of `newer` in bench's checkout (None when git cannot say)."""
    root = Path(cwd) if cwd is not None else SOURCE_ROOT
    a, b = older.removesuffix("-dirty"), newer.removesuffix("-dirty")
    try:
        out = _git(["merge-base", "--is-ancestor", a, b], root)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(out.returncode)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def blas() -> str:
    """The BLAS torch was built with (its build settings' BLAS_INFO, e.g. `mkl`, `open`, `accelerate`)."""
    import torch  # lazy: provenance is read without torch (git commit, package versions)

    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def machine() -> dict[str, str | int]:
    """What makes numbers machine-dependent: float rounding differs between CPUs, SIMD paths and thread counts
    (reductions are split across threads), and training amplifies it. Stored with every run."""
    import torch  # lazy: provenance is read without torch (git commit, package versions)

    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas(),
            "platform": platform.platform(terse=True)}
