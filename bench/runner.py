"""The runner: computes a suite's plan cell by cell, reusing what the store already holds."""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from bench.attacks.registry import run_attack
from bench.breakdown import attack_breakdown, clean_breakdown
from bench.data.dataset import ImageSet
from bench.data.sources import load_data
from bench.errors import BenchError
from bench.metrics import Proportion, classification_metrics, perturbation_norms, summary
from bench.models.checkpoint import load_saved_detector, load_user_checkpoint, save_detector
from bench.models.detector import Detector, ModelSpec
from bench.models.registry import create_model
from bench.models.training import Recipe, train_detector
from bench.provenance import git_commit, package_versions
from bench.store import ResultStore
from bench.suite.load import LoadedSuite
from bench.suite.plan import AttackCell, CraftCell, ModelCell, Plan, Variant, build_plan


def default_home() -> Path:
    return Path(os.environ.get("BENCH_HOME", ".bench"))


@dataclass
class RunStats:
    computed: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(key: str) -> None:
    """Seed torch and numpy from a cell's key, so each cell is deterministic on its own."""
    seed = int(key[:8], 16)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def quantise(adv: torch.Tensor, storage: str, jpeg_quality: int) -> torch.Tensor:
    """What an image file holds: 8-bit values, or a JPEG round trip. Returns uint8 NCHW."""
    u8 = (adv.clamp(0, 1) * 255).round().to(torch.uint8)
    if storage == "png":
        return u8
    out = []
    for img in u8.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=jpeg_quality)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


class Runner:
    """Runs one loaded suite against one results store."""

    def __init__(
        self,
        ls: LoadedSuite,
        home: Path | None = None,
        device: torch.device | None = None,
        quiet: bool = False,
        force: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.ls = ls
        self.shard = shard
        self.s = ls.suite
        self.store: ResultStore | None = None
        self.home = Path(home or default_home())
        self.device = device or torch.device("cpu")
        self.quiet = quiet
        self.force = force
        self.stats = RunStats()
        self.train_set, self.test_set = load_data(self.s.data, self.s.seed, ls.base_dir)
        self.plan: Plan = build_plan(ls, self.train_set, self.test_set)
        self._detectors: dict[str, Detector] = {}
        self._defended: dict[str, Detector] = {}
        self._adv: dict[str, torch.Tensor] = {}
        self.run_id: int | None = None
        self._preflight()

    def _preflight(self) -> None:
        """Everything that can fail on bad input, before anything is written: user checkpoints, defenses.

        Defenses are checked around an untrained model of the same architecture (nothing is trained here).
        """
        for name, mc in self.plan.models.items():
            if mc.model.config.checkpoint:
                self.detector(name)
        from bench.defenses.apply import apply_defense

        for v in self.plan.variants.values():
            if v.defense is None:
                continue
            cfg = self.plan.models[v.model].model.config
            probe = self._detectors.get(v.model) or create_model(
                cfg.arch, self.s.data.size, cfg.mean, cfg.std, where=f"models.{v.model}")
            d = self.s.defenses[v.defense]
            apply_defense(probe.to(self.device), v.defense, d.use, d.params, self.ls.base_dir)

    # ------------------------------------------------------------------ helpers
    def _log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    def _done(self, cell_id: str) -> bool:
        return not self.force and self.store.has(cell_id)

    @property
    def attacked(self) -> ImageSet:
        idx = [self.test_set.ids.index(i) for i in self.plan.attack_ids]
        return self.test_set.subset(idx)

    # ------------------------------------------------------------------ models
    def detector(self, name: str) -> Detector:
        """The trained (or loaded) detector for a model of the suite, cached on disk by its key."""
        if name in self._detectors:
            return self._detectors[name]
        mc: ModelCell = self.plan.models[name]
        cfg = mc.model.config
        spec = ModelSpec(arch=cfg.arch, input_size=self.s.data.size, mean=cfg.mean, std=cfg.std)
        if cfg.checkpoint:
            det = load_user_checkpoint(self.ls.base_dir / cfg.checkpoint, spec, where=f"models.{mc.model.base}")
        else:
            path = self.home / "checkpoints" / f"{mc.model.name}-{mc.key[:16]}.safetensors"
            if path.is_file() and not self.force:
                det = load_saved_detector(path)
                self.stats.reused += 1
            else:
                det = self._train(mc, spec, path)
        det = det.to(self.device).eval()
        self._detectors[name] = det
        return det

    def _train(self, mc: ModelCell, spec: ModelSpec, path: Path) -> Detector:
        cfg = mc.model.config
        seed_everything(mc.key)
        det = create_model(cfg.arch, spec.input_size, spec.mean, spec.std, pretrained=cfg.pretrained,
                           where=f"models.{mc.model.base}")
        if cfg.init_from:
            det.load_state_dict(self.detector(cfg.init_from).state_dict())
        det = det.to(self.device)
        defense = None
        if mc.model.training_defense:
            from bench.defenses.registry import create_defense

            dname, params = mc.model.training_defense
            defense = create_defense(dname, params, where=f"models.{mc.model.base}.defense.{dname}",
                                     base_dir=self.ls.base_dir)
        t0 = time.perf_counter()
        losses = train_detector(det, self.train_set, Recipe(**cfg.recipe.model_dump()), seed=int(mc.key[:8], 16),
                                defense=defense, quiet=self.quiet, desc=f"train {mc.model.name}")
        dt = time.perf_counter() - t0
        save_detector(det, path, {"key": mc.key, "losses": losses})
        self._record_model(mc, dt, {"source": "trained", "losses": losses, "path": str(path)})
        self.stats.computed += 1
        return det

    def _record_model(self, mc: ModelCell, seconds: float, metrics: dict) -> None:
        key = {"model": mc.model.name, "arch": mc.model.config.arch, "defense": mc.model.training_defense}
        self.store.put(mc.key, "model", key, metrics, seconds, str(self.device), self.run_id)

    def variant_detector(self, v: Variant) -> Detector:
        """The detector as scored: the plain model, or with its evaluation-time defense applied."""
        base = self.detector(v.model)
        if v.defense is None:
            return base
        if v.name not in self._defended:
            from bench.defenses.apply import apply_defense

            d = self.s.defenses[v.defense]
            self._defended[v.name] = apply_defense(base, v.defense, d.use, d.params, self.ls.base_dir)
        return self._defended[v.name]

    # ------------------------------------------------------------------ cells
    def run_clean(self, v: Variant) -> None:
        cid = self.plan.clean_key(v)
        if self._done(cid):
            self.stats.reused += 1
            return
        seed_everything(cid)
        t0 = time.perf_counter()
        det = self.variant_detector(v)
        p_real = det.predict_proba(self.test_set.images)[:, 1].numpy()
        labels = self.test_set.labels.numpy()
        metrics = classification_metrics(labels, p_real)
        metrics.update(clean_breakdown(labels, p_real, self.test_set.subsets, self.test_set.groups))  # issue 14
        key = {"variant": v.name, "model": v.model, "defense": v.defense}
        self.store.put(cid, "clean", key, metrics, time.perf_counter() - t0, str(self.device), self.run_id,
                       (self.test_set.ids, labels, p_real))
        self.stats.computed += 1

    def run_gradnorm(self, mc: ModelCell) -> None:
        n = self.s.evaluation.gradient_norm_images
        cid = self.plan.gradnorm_key(mc, n)
        if self._done(cid):
            self.stats.reused += 1
            return
        from bench.diagnostics import input_gradient_norm

        seed_everything(cid)
        t0 = time.perf_counter()
        mean, per_image = input_gradient_norm(self.detector(mc.model.name), self.test_set.images[:n])
        metrics = {"mean": float(mean), "median": float(np.median(per_image)), "n": int(len(per_image))}
        self.store.put(cid, "gradnorm", {"model": mc.model.name}, metrics, time.perf_counter() - t0,
                       str(self.device), self.run_id)
        self.stats.computed += 1

    def adversarial(self, craft: CraftCell) -> torch.Tensor:
        """Adversarial examples (uint8 NCHW) for the attacked fakes, made once and stored on disk."""
        if craft.key in self._adv:
            return self._adv[craft.key]
        path = self.home / "adversarial" / f"{craft.key[:24]}.pt"
        if path.is_file() and not self.force and self.store.has(craft.key):
            adv = torch.load(path, weights_only=True)
        else:
            adv = self._craft(craft, path)
        self._adv[craft.key] = adv
        return adv

    def _craft(self, craft: CraftCell, path: Path) -> torch.Tensor:
        ap = craft.attack
        seed_everything(craft.key)
        det = self.variant_detector(craft.source)
        data = self.attacked
        bs = self.s.evaluation.attack_batch_size
        t0 = time.perf_counter()
        outs = []
        for i in range(0, len(data), bs):
            x, y = data.images[i : i + bs], data.labels[i : i + bs]
            adv = run_attack(ap.attack, ap.backend, det, x.to(self.device), y.to(self.device), ap.params)
            if adv.shape != x.shape or not torch.isfinite(adv).all():
                raise BenchError(f"attacks.{ap.key}", f"backend {ap.backend} returned a bad batch {tuple(adv.shape)}")
            outs.append(adv.cpu())
        dt = time.perf_counter() - t0
        ev = self.s.evaluation
        raw = torch.cat(outs)
        # of the fakes the source detects, those the attack gave back as they were, to 8-bit precision (before
        # storage adds its own change); an image already misclassified needs no perturbation
        detected = torch.from_numpy(det.predict_proba(data.images)[:, 1].numpy() < 0.5)
        same = (quantise(raw, "png", 0) == quantise(data.images, "png", 0)).flatten(1).all(1)
        q = quantise(raw, ev.storage, ev.jpeg_quality)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(q, tmp)
        os.replace(tmp, path)
        l2, linf = perturbation_norms(data.images.numpy(), q.float().div(255).numpy())
        metrics = {"l2": summary(l2), "linf": summary(linf), "n": len(data), "seconds_per_image": dt / len(data),
                   "unchanged": Proportion(int((same & detected).sum()), int(detected.sum())).as_dict()}
        key = {"attack": ap.key, "label": ap.label, "backend": ap.backend, "params": ap.params.model_dump(),
               "source": craft.source.name}
        self.store.put(craft.key, "craft", key, metrics, dt, str(self.device), self.run_id)
        self.stats.computed += 1
        return q

    def run_attack_cell(self, cell: AttackCell) -> None:
        if self._done(cell.key):
            self.stats.reused += 1
            return
        seed_everything(cell.key)
        t0 = time.perf_counter()
        adv = self.adversarial(cell.craft).float().div(255)
        data = self.attacked
        det = self.variant_detector(cell.target)
        p_adv = det.predict_proba(adv)[:, 1].numpy()
        p_clean = det.predict_proba(data.images)[:, 1].numpy()
        correct_adv = p_adv < 0.5
        correct_clean = p_clean < 0.5
        l2, linf = perturbation_norms(data.images.numpy(), adv.numpy())
        flipped = correct_clean & ~correct_adv
        metrics = {
            "accuracy": Proportion(int(correct_adv.sum()), len(adv)).as_dict(),
            "clean_accuracy": Proportion(int(correct_clean.sum()), len(adv)).as_dict(),
            "success_rate": Proportion(int(flipped.sum()), int(correct_clean.sum())).as_dict(),
            "l2": summary(l2),
            "linf": summary(linf),
            "l2_successful": summary(l2[flipped]),
            "linf_successful": summary(linf[flipped]),
        }
        metrics.update(attack_breakdown(correct_adv, data.subsets))  # issue 14: per-subset accuracy
        craft = self.store.get(cell.craft.key)
        if craft is not None and "unchanged" in craft.metrics:  # the attack's own output, before storage
            metrics["unchanged"] = craft.metrics["unchanged"]
        ap = cell.attack
        key = {"attack": ap.key, "attack_name": ap.attack, "label": ap.label, "backend": ap.backend,
               "params": ap.params.model_dump(), "source": cell.source.name, "target": cell.target.name,
               "threat": cell.threat}
        self.store.put(cell.key, "attack", key, metrics, time.perf_counter() - t0, str(self.device), self.run_id,
                       (data.ids, data.labels.numpy(), p_adv))
        self.stats.computed += 1

    # ------------------------------------------------------------------ all
    def _mine(self, step: Variant | ModelCell | AttackCell) -> bool:
        """With `--shard K/N`, this process computes the cells whose key falls in shard K (by craft for attacks,
        so each set of adversarial examples is made by exactly one shard)."""
        if self.shard is None:
            return True
        k, n = self.shard
        if isinstance(step, AttackCell):
            key = step.craft.key
        elif isinstance(step, Variant):
            key = self.plan.clean_key(step)
        else:
            key = step.key
        return int(key[:15], 16) % n == k

    def run(self, store: ResultStore) -> RunStats:
        t0 = time.perf_counter()
        self.store = store
        self.run_id = self.store.start_run(
            self.s.name, self.ls.profile, git_commit=git_commit(), versions=package_versions(), seed=self.s.seed,
            device=str(self.device), overrides=self.ls.overrides,
        )
        status = "failed"
        try:
            for name, mc in self.plan.models.items():
                if self.shard is None:
                    self.detector(name)  # sharded runs train lazily, only the models their cells need
                if mc.model.config.checkpoint and not self._done(mc.key):
                    self._record_model(mc, 0.0, {"source": "checkpoint", "path": mc.model.config.checkpoint})
            steps = [st for st in (list(self.plan.variants.values()) + list(self.plan.models.values())
                                   + self.plan.attacks) if self._mine(st)]
            bar = tqdm(steps, desc=f"cells ({self.ls.tag})", disable=self.quiet)
            for step in bar:
                if isinstance(step, Variant):
                    self.run_clean(step)
                elif isinstance(step, ModelCell):
                    self.run_gradnorm(step)
                else:
                    self.run_attack_cell(step)
            from bench.suite.extras import run_extras

            run_extras(self)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.stats.seconds = time.perf_counter() - t0
            self.store.finish_run(self.run_id, self.stats.computed, self.stats.reused, status)
        return self.stats

