"""The deepfake field's backbones through `timm`: XceptionNet (the FaceForensics++ baseline) and
EfficientNet-B4 (the DFDC winners' backbone), each with a 2-logit head.

`pretrained: true` loads ImageNet weights only from a local cache, never from the network: the Hugging
Face cache (`$HF_HOME/hub`, default ~/.cache/huggingface/hub) for weights timm hosts there, or the torch
hub cache (`$TORCH_HOME/hub/checkpoints`) for weights timm fetches by URL. Missing weights are a
BenchError that says which file to put where.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from bench.errors import BenchError

# bench architecture -> timm model name (with its pretrained tag)
TIMM_NAMES = {"xception": "legacy_xception.tf_in1k", "efficientnet_b4": "efficientnet_b4.ra2_in1k"}
HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")


def _timm():
    try:
        import timm  # lazy: an optional extra (bench[timm]), slow to import
    except ImportError as exc:  # pragma: no cover - timm is in the test extra
        raise BenchError("models.arch", "XceptionNet and EfficientNet-B4 need timm: pip install 'bench[timm]'") \
            from exc
    return timm


def cached_weights(timm_name: str) -> Path | None:
    """The local file holding `timm_name`'s pretrained weights, or None; looks only at the caches."""
    from timm.models import get_pretrained_cfg  # lazy: the optional timm extra

    cfg = get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache  # lazy: comes with the optional timm extra

        for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else HF_FILENAMES):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.url:
        import torch.hub  # lazy: only to find the hub's cache folder

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if path.is_file():
            return path
    return None


def _where_to_put(timm_name: str) -> str:
    from timm.models import get_pretrained_cfg  # lazy: the optional timm extra

    cfg = get_pretrained_cfg(timm_name)
    places = []
    if cfg is not None and cfg.hf_hub_id:
        places.append(f"the Hugging Face cache ($HF_HOME/hub; e.g. `huggingface-cli download {cfg.hf_hub_id}` on a "
                      "machine with network, then copy the cache)")
    if cfg is not None and cfg.url:
        import torch.hub  # lazy: only to find the hub's cache folder

        places.append(f"{Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(cfg.url)} (from {cfg.url})")
    return " or ".join(places) or "a local checkpoint (load it with `checkpoint:`)"


def timm_detector(arch: str, num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """A timm backbone with a `num_classes` head; pretrained weights come only from a local cache."""
    timm = _timm()
    name = TIMM_NAMES[arch]
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    path = cached_weights(name)
    if path is None:
        raise BenchError(f"models.{arch}.pretrained", f"ImageNet weights for {name} are not in the local cache and "
                         f"nothing is downloaded; put them in {_where_to_put(name)}, or set pretrained: false")
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: timm reads the file below, never the hub
    return timm.create_model(name, pretrained=True, num_classes=num_classes,
                             pretrained_cfg_overlay={"file": str(path)})


def xception(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """XceptionNet (timm `legacy_xception`, the original Xception that FaceForensics++ fine-tuned)."""
    return timm_detector("xception", num_classes, pretrained)


def efficientnet_b4(num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    """EfficientNet-B4 (timm `efficientnet_b4`)."""
    return timm_detector("efficientnet_b4", num_classes, pretrained)
