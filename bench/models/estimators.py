"""The one place that turns a `Detector` into toolkit estimators.

Both toolkits receive the bare network and the detector's normalisation as *their own*
preprocessing, with inputs in [0, 1] and float32 enforced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bench.models.detector import Detector
from bench.settings import configure_art


def _art_classifier_class():
    configure_art()
    from art.estimators.classification import PyTorchClassifier  # lazy: ART is slow to import

    class Float32PyTorchClassifier(PyTorchClassifier):
        """PyTorchClassifier that casts every input to float32 (numpy 2 upcasts some attacks to float64)."""

        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs):
            return super().predict(np.asarray(x, dtype=np.float32), batch_size, training_mode, **kwargs)

        def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
            if isinstance(x, np.ndarray):
                x = x.astype(np.float32, copy=False)
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)

        def class_gradient(self, x, label=None, training_mode: bool = False, **kwargs):
            if isinstance(x, np.ndarray):
                x = x.astype(np.float32, copy=False)
            return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)

    return Float32PyTorchClassifier


def to_art(detector: Detector, preprocessing_defences: Sequence | None = None):
    """An ART `PyTorchClassifier` over the bare network, clip values [0, 1], normalisation as preprocessing."""
    cls = _art_classifier_class()
    spec = detector.spec
    device = detector.device
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    net = detector.net.eval()
    return cls(
        model=net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(3, spec.input_size, spec.input_size),
        nb_classes=spec.num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=(mean, std),
        preprocessing_defences=list(preprocessing_defences) if preprocessing_defences else None,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def to_foolbox(detector: Detector):
    """A Foolbox `PyTorchModel` over the bare network, bounds (0, 1), normalisation as preprocessing."""
    import foolbox as fb  # lazy: only Foolbox attacks need it

    spec = detector.spec
    net = detector.net.eval()
    preprocessing = dict(mean=list(spec.mean), std=list(spec.std), axis=-3)
    return fb.PyTorchModel(net, bounds=(0.0, 1.0), preprocessing=preprocessing, device=detector.device)


def as_float_tensor(x: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """A contiguous float32 tensor on `device`."""
    t = torch.as_tensor(x)
    return t.to(device=device, dtype=torch.float32).contiguous()
