"""Start a local Ray instance or join a cluster, for one run, and leave nothing behind.

A local instance keeps all its files (sessions, sockets, logs) in a fresh temporary folder, removed when
the run succeeds and kept (its path in the error) when it does not; the dashboard is off; token
authentication and usage reporting stay off unless the environment asks for them (`settings.quiet_ray`),
so nothing is written under the user's home. Every worker gets OMP/MKL thread counts and the variables the
harness reads (`settings.worker_environment`).
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ray

from bench.errors import BenchError
from bench.settings import local_ray_priority, quiet_ray, worker_environment

OBJECT_STORE_BYTES = 256 * 2**20  # cells exchange files and small records, not tensors, through Ray


@dataclass
class RaySession:
    """Where the session's files are (None when joining a cluster: they live on its nodes)."""

    temp_dir: str | None
    started: bool


def worker_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, **worker_environment()}


CONNECT_TIMEOUT_S = 5.0  # how long `--address HOST:PORT` may take to answer before the run is refused


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse `--address HOST:PORT` now (before the run writes anything) when nothing listens there: joining
    an address where nothing answers would otherwise wait for minutes. "auto" and None are Ray's to resolve."""
    if address is None or address == "auto" or address.startswith(("ray://", "local")):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BenchError("--address", f"expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise BenchError("--address", f"no Ray cluster answers at {address} ({why} after at most {timeout:g} s); "
                                      "start one with `ray start --head`, or check the address") from None


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, threads: int = 1) -> Iterator[RaySession]:
    """Ray for the duration of a run: a local instance (`address` None) or the cluster at `address`
    ("auto" or HOST:PORT). A session the caller already opened is used as it is and left open."""
    quiet_ray()
    if ray.is_initialized():
        yield RaySession(None, started=False)
        return
    common = {"runtime_env": {"env_vars": worker_env(threads)}, "logging_level": logging.WARNING,
              "log_to_driver": False, "configure_logging": True}
    temp_dir = None
    if address is None:
        local_ray_priority()
        temp_dir = tempfile.mkdtemp(prefix="bench-ray-")  # short: Ray's socket paths must fit in 107 bytes
        ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 _temp_dir=temp_dir, **common)
    else:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError("--address", f"cannot join a Ray cluster at {address!r}: {exc}") from None
    ok = False
    try:
        yield RaySession(temp_dir, started=True)
        ok = True
    finally:
        ray.shutdown()
        if temp_dir is not None and ok:
            shutil.rmtree(temp_dir, ignore_errors=True)
