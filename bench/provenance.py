"""What a result was computed with: git commit, package versions, device."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "adversarial-robustness-toolbox", "foolbox", "numpy", "bench")


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
