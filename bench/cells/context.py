"""What cells compute from: the loaded suite, its data and plan, and the artifacts under the home.

A context is rebuilt from the suite in whatever process runs a cell (it is deterministic): cells pass
nothing in memory to each other, only keys; checkpoints and adversarial examples are files under the home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.data.dataset import ImageSet
from bench.defenses.apply import apply_defense
from bench.errors import BenchError
from bench.models.checkpoint import load_saved_detector, load_user_checkpoint
from bench.models.detector import Detector, ModelSpec
from bench.suite.loaded import AttackPoint, LoadedSuite
from bench.suite.plan import CraftCell, ModelCell, Plan, Variant

CALIBRATION_IMAGES = 16  # training images (half real, half fake) a suite defense calibrates on


@dataclass
class RunContext:
    ls: LoadedSuite
    train_set: ImageSet
    test_set: ImageSet
    plan: Plan
    home: Path
    device: torch.device
    quiet: bool = False
    _detectors: dict[str, Detector] = field(default_factory=dict)
    _defended: dict[str, Detector] = field(default_factory=dict)
    _adv: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def suite(self):
        return self.ls.suite

    @property
    def attacked(self) -> ImageSet:
        """The attacked test fakes, in the plan's order."""
        index = {i: n for n, i in enumerate(self.test_set.ids)}
        return self.test_set.subset([index[i] for i in self.plan.attack_ids])

    def attacked_for(self, ap: AttackPoint) -> ImageSet:
        """The fakes an attack point attacks: all attacked fakes, or the first `ap.images` (a check's)."""
        data = self.attacked
        return data if not ap.images else data.subset(list(range(min(ap.images, len(data)))))

    # ------------------------------------------------------------------ artifacts
    def checkpoint_path(self, mc: ModelCell) -> Path:
        return self.home / "checkpoints" / f"{mc.model.name}-{mc.key[:16]}.safetensors"

    def adversarial_path(self, craft: CraftCell) -> Path:
        return self.home / "adversarial" / f"{craft.key[:24]}.pt"

    def norms_before_path(self, craft: CraftCell) -> Path:
        """Per-image L2 norms of a craft's perturbations before storage (float32 tensor)."""
        return self.home / "adversarial" / f"{craft.key[:24]}.l2-before.pt"

    def spec(self, mc: ModelCell) -> ModelSpec:
        cfg = mc.model.config
        return ModelSpec(arch=cfg.arch, input_size=self.suite.data.size, mean=cfg.mean, std=cfg.std)

    def detector(self, name: str) -> Detector:
        """The trained (or user's) detector of a model of the suite; its model cell must have run."""
        if name not in self._detectors:
            mc = self.plan.models[name]
            cfg = mc.model.config
            if cfg.checkpoint:
                det = load_user_checkpoint(self.ls.base_dir / cfg.checkpoint, self.spec(mc),
                                           where=f"models.{mc.model.base}")
            else:
                det = load_saved_detector(self.checkpoint_path(mc))
            self.remember(name, det)
        return self._detectors[name]

    def loaded(self, name: str) -> Detector | None:
        """The detector of a model if it is loaded already (no training or file access)."""
        return self._detectors.get(name)

    def remember(self, name: str, det: Detector) -> Detector:
        det.name = name  # errors from its checks name the model
        self._detectors[name] = det.to(self.device).eval()
        return self._detectors[name]

    def variant_detector(self, v: Variant) -> Detector:
        """The detector as scored: the plain model, or with its evaluation-time defense applied."""
        base = self.detector(v.model)
        if v.defense is None:
            return base
        if v.name not in self._defended:
            d = self.suite.defenses[v.defense]
            self._defended[v.name] = apply_defense(base, v.defense, d.use, d.params, self.ls.base_dir,
                                                   calibration=self.calibration_images)
        return self._defended[v.name]

    def calibration_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out images on which a defense chooses its data-dependent settings (DIP's `readout: auto`):
        `CALIBRATION_IMAGES` training images, half real and half fake, a seeded choice. Training images,
        because every test image is evaluated (clean cells score them all). The detector has fitted them, so it is
        more accurate on them than on unseen images; they never enter a score."""
        labels = self.train_set.labels.numpy()
        rng = np.random.default_rng([self.suite.seed, 0xCA1])
        half = CALIBRATION_IMAGES // 2
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:half] for c in (0, 1)]))
        sub = self.train_set.subset([int(i) for i in idx])
        return sub.images, sub.labels

    def adversarial(self, craft: CraftCell) -> torch.Tensor:
        """The stored adversarial examples (uint8 NCHW) of a craft cell that has run."""
        if craft.key not in self._adv:
            path = self.adversarial_path(craft)
            try:
                adv = torch.load(path, weights_only=True)
            except Exception as exc:  # noqa: BLE001 - torch raises several error types on a damaged file
                raise BenchError(str(path), f"damaged adversarial examples ({type(exc).__name__}); delete the file "
                                            "and rerun `bench run` to make them again") from None
            if not isinstance(adv, torch.Tensor):
                raise BenchError(str(path), "not a tensor of adversarial examples; delete the file and rerun "
                                            "`bench run` to make them again")
            self._adv[craft.key] = adv
        return self._adv[craft.key]
