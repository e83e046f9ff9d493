"""Checkpoints: saving trained detectors (safetensors + metadata) and loading users' files safely.

Never unpickles code: `.pt`/`.pth` files load with `torch.load(weights_only=True)`; safetensors
and TorchScript archives are the other accepted formats.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bench.errors import BenchError
from bench.models.detector import Detector, ModelSpec
from bench.models.registry import create_model


def save_detector(detector: Detector, path: Path, meta: dict | None = None) -> None:
    """Atomically write the detector's weights and spec (and `meta`) as a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()}
    header = {"spec": json.dumps(detector.spec.as_dict()), "meta": json.dumps(meta or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint_meta(path: Path) -> dict:
    """The `meta` a checkpoint was saved with (e.g. the training losses)."""
    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
    return json.loads(header.get("meta", "{}"))


def load_saved_detector(path: Path) -> Detector:
    """Load a file written by `save_detector` (the spec travels with the weights)."""
    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
    if "spec" not in header:
        raise BenchError(str(path), "not a bench checkpoint (no spec in its metadata)")
    s = json.loads(header["spec"])
    det = create_model(s["arch"], s["input_size"], tuple(s["mean"]), tuple(s["std"]))
    det.load_state_dict(load_file(str(path)))
    return det.eval()


def _jit_load(path: Path) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor] | torch.nn.Module:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_file(str(path))
    if suffix in (".ts", ".torchscript", ".jit"):
        return _jit_load(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain containers: the file may carry code.
        try:
            return _jit_load(path)
        except Exception:  # noqa: BLE001 - not TorchScript either
            raise BenchError(
                str(path),
                "refusing to load: the checkpoint is a pickle that needs more than plain tensors "
                "(it may carry code). Save a state_dict, safetensors or TorchScript instead "
                f"({str(exc).splitlines()[0][:200]})",
            ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise BenchError(str(path), f"cannot read checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BenchError(str(path), "expected a state_dict (a mapping of parameter names to tensors)")
    return obj


def load_user_checkpoint(path: Path, spec: ModelSpec, where: str = "checkpoint") -> Detector:
    """A user's checkpoint for architecture `spec.arch`: state_dict `.pt`, safetensors or TorchScript.

    State dict keys may be the bare network's (`fc.weight`) or the detector's (`net.fc.weight`).
    A mismatched architecture or shape is a clear error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{where}", f"checkpoint file {path} does not exist")
    obj = _state_dict_from_file(path)
    if isinstance(obj, torch.nn.Module):  # TorchScript: the network itself
        return Detector(obj, spec).eval()
    det = create_model(spec.arch, spec.input_size, spec.mean, spec.std, where=where)
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if not any(k.startswith("net.") for k in state):
        state = {f"net.{k}": v for k, v in state.items()}
    state.setdefault("mean", det.mean)
    state.setdefault("std", det.std)
    own = det.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"shape mismatch at {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise BenchError(str(path), f"not a checkpoint for architecture {spec.arch!r}: " + "; ".join(parts))
    det.load_state_dict(state)
    return det.eval()
