"""Checkpoints: saving trained detectors (safetensors + metadata) and loading users' files safely.

Never unpickles code: `.pt`/`.pth` files load with `torch.load(weights_only=True)`; safetensors
and TorchScript archives are the other accepted formats.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from bench.errors import BenchError
from bench.models.detector import Detector, ModelSpec
from bench.models.registry import create_model
from bench.results.atomic import atomic_write


def save_detector(detector: Detector, path: Path, meta: dict | None = None) -> None:
    """Atomically write the detector's weights and spec (and `meta`) as a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise BenchError(f"models.{detector.name}", f"refusing to save non-finite weights ({bad[0]})")
    meta = {**(meta or {}), "tensors_sha256": tensors_digest(tensors)}  # a checkpoint verifies itself
    header = {"spec": json.dumps(detector.spec.as_dict()), "meta": json.dumps(meta)}
    data = safetensors_bytes(tensors, metadata=header)
    atomic_write(path, lambda fh: fh.write(data))  # Python writes: a full disk is an OSError naming the file


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\t{t.dtype}\t{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_matches(path: Path, key: str) -> bool:
    """Whether a file written by `save_detector` is the checkpoint of model cell `key`, undamaged (its weights
    match the digest saved in it). Any unreadable file is not."""
    try:
        meta = read_checkpoint_meta(path)
        if meta.get("key") != key or not isinstance(meta.get("tensors_sha256"), str):
            return False
        return tensors_digest(load_file(str(path))) == meta["tensors_sha256"]
    except Exception:  # noqa: BLE001 - safetensors and json raise their own error types on a damaged file
        return False


def read_checkpoint_meta(path: Path) -> dict:
    """The `meta` a checkpoint was saved with (e.g. the training losses)."""
    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata() or {}
    return json.loads(header.get("meta", "{}"))


def load_saved_detector(path: Path) -> Detector:
    """Load a file written by `save_detector` (the spec travels with the weights); a damaged one is a
    `BenchError` naming it."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        if "spec" not in header:
            raise BenchError(str(path), "not a bench checkpoint (no spec in its metadata)")
        s = json.loads(header["spec"])
        det = create_model(s["arch"], s["input_size"], tuple(s["mean"]), tuple(s["std"]))
        det.load_state_dict(load_file(str(path)))
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors, json and torch raise their own error types
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise BenchError(str(path), f"damaged checkpoint ({type(exc).__name__}: {first}); delete it and rerun "
                                    "`bench run` to train it again") from None
    return det.eval()


def _jit_load(path: Path) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor] | torch.nn.Module:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise BenchError(str(path), f"not a readable safetensors file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]})") from None
    if suffix in (".ts", ".torchscript", ".jit"):
        try:
            return _jit_load(path)
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError or its own types
            raise BenchError(str(path), f"not a TorchScript archive ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
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
        _check_scripted_architecture(obj, spec, path, where)
        return probe_detector(Detector(obj, spec).eval(), path)
    bad = [k for k, v in obj.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise BenchError(str(path), f"the checkpoint holds non-finite values (NaN or inf) in {bad[0]}")
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
    return probe_detector(det.eval(), path)


def _bare_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes by name, without a `net.`/`module.` prefix or the detector's normalisation."""
    out = {}
    for k, v in module.state_dict().items():
        for prefix in ("module.", "net."):
            k = k.removeprefix(prefix)
        if k not in ("mean", "std"):
            out[k] = tuple(v.shape)
    return out


def _check_scripted_architecture(module: torch.nn.Module, spec: ModelSpec, path: Path, where: str) -> None:
    """A TorchScript network whose weights can be compared with `spec.arch`'s must match it.

    Same names and shapes, or (a renamed wrapper) the same shapes in the same order. A module without
    parameters cannot be told apart: the probe batch is the only check then.
    """
    mine = _bare_shapes(module)
    if not mine:
        return
    ref = _bare_shapes(create_model(spec.arch, spec.input_size, where=where).net)
    if mine == ref or list(mine.values()) == list(ref.values()):
        return
    diff = next((k for k in ref if mine.get(k) != ref[k]), None)
    detail = (f"at {diff}: file {mine.get(diff, 'absent')} vs {spec.arch} {ref[diff]}" if diff
              else f"{len(mine)} tensors vs {len(ref)}")
    raise BenchError(str(path), f"the TorchScript network is not a {spec.arch} (the suite's arch): {detail}")


def probe_detector(det: Detector, path: Path, batch: int = 2) -> Detector:
    """Run a loaded detector on a probe batch: it must return two finite logits per image, else a BenchError."""
    size = det.spec.input_size
    x = torch.linspace(0, 1, batch * 3 * size * size).reshape(batch, 3, size, size)
    try:
        with torch.no_grad():
            out = det(x)
    except Exception as exc:  # noqa: BLE001 - a user's network: report what it raised, naming the file
        raise BenchError(str(path), f"the network fails on a probe batch of {batch} x 3 x {size} x {size} images "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(out, torch.Tensor) or out.shape != (batch, 2):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchError(str(path), f"the network returns {shape} on a batch of {batch} images; a detector returns "
                         f"2 logits per image ({batch}, 2): index 0 fake, 1 real")
    if not bool(torch.isfinite(out).all()):
        raise BenchError(str(path), "the network returns non-finite logits (NaN or inf) on a probe batch")
    probe = x.clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = det(probe)
            grad = torch.autograd.grad(logits[:, 1].sum(), probe, allow_unused=True)[0] if logits.requires_grad \
                else None
    except RuntimeError:
        grad = None
    if grad is None:
        raise BenchError(str(path), "the network's output does not depend on its input through autograd (no "
                         "gradient reaches the images): the attacks need a differentiable detector")
    return det
