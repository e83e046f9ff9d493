"""The craft cell: run one attack point on the attacked fakes through its source variant, deliver each image (8 bits,
within the point's budget), store it as the suite stores images (8-bit PNG or a JPEG round trip) under the home.

A storage-aware point (the default, `evaluation.storage_aware`) attacks the source detector behind the suite's
storage (`bench.attacks.storage.stored_detector`): its gradients come through the storage and every decision it
takes is taken on the stored image. A storage-unaware point (`storage_aware: false`, the paper's setting)
attacks the bare detector; its output is delivered, stored and scored the same way. A bounded point runs at its
L-inf budget on the 8-bit grid and its delivered image is projected onto its budget (`bench.attacks.delivery`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

from bench.attacks.controls import noise_radius
from bench.attacks.counting import PassCount
from bench.attacks.delivery import budget_of, deliver, delivered_budget, grid_eps, on_grid
from bench.attacks.making import measured, run_point, unchanged
from bench.attacks.registry import effective_params, get_attack, warm_backend
from bench.attacks.storage import Storage, stored_detector
from bench.cells.context import RunContext
from bench.cells.registry import Record, computes
from bench.errors import BenchError
from bench.models.detector import Detector
from bench.results.atomic import atomic_write
from bench.results.metrics import Proportion, perturbation_norms, summary
from bench.suite.loaded import AttackPoint
from bench.suite.plan import CraftCell


def is_done(craft: CraftCell, ctx: RunContext) -> bool:
    """A craft is done only while its adversarial examples (and their norms before storage) are on disk too."""
    return ctx.adversarial_path(craft).is_file() and ctx.norms_before_path(craft).is_file()


def attack_detector(ap: AttackPoint, source: Detector, storage: Storage) -> Detector:
    """The detector an attack point is made on: the source behind the suite's storage, or bare (storage-unaware)."""
    return stored_detector(source, storage) if ap.storage_aware else source


def attack_with_restarts(ap: AttackPoint, det: Detector, x: torch.Tensor, y: torch.Tensor, params) -> torch.Tensor:
    """The attack point on a batch; with `ap.restarts` > 1, each restart runs on the images no earlier one broke,
    judged by `det` on the delivered image (the stored one, when `det` is made through the storage)."""
    budget = budget_of(ap.attack, ap.params)

    def fooled(adv: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        delivered = deliver(adv, xs, *(budget or (None,))).float() / 255.0
        pred = torch.from_numpy((det.predict_proba(delivered)[:, 1].numpy() >= 0.5).astype("int64"))
        return pred != ys

    return run_point(ap.attack, ap.backend, params, ap.restarts, det, x, y, fooled)


def make_examples(ap: AttackPoint, params, det: Detector, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int, device: torch.device) -> torch.Tensor:
    """The attack's float output for every image (CPU), batch by batch on `det`; a bad batch is refused."""
    outs = []
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size], labels[i : i + batch_size]
        adv = attack_with_restarts(ap, det, x.to(device), y.to(device), params)
        if adv.shape != x.shape or not torch.isfinite(adv).all():
            raise BenchError(f"attacks.{ap.key}", f"backend {ap.backend} returned a bad batch {tuple(adv.shape)}")
        outs.append(adv.cpu())
    return torch.cat(outs) if outs else images.clone()


@dataclass
class Crafted:
    """An attack point's examples: its float output, the delivered 8-bit images, their budget, the cost."""

    raw: torch.Tensor
    delivered: torch.Tensor  # uint8 NCHW: the adversary's files, before storage
    budget: dict[str, Any] | None  # bench.attacks.delivery.delivered_budget, for a bounded point
    effective: dict[str, str]  # the parameters as run (bench.attacks.registry.Backend)
    passes: PassCount
    seconds: float


def craft(ap: AttackPoint, params, source: Detector, storage: Storage, images: torch.Tensor, labels: torch.Tensor,
          batch_size: int = 64, device: torch.device | str = "cpu") -> Crafted:
    """Make an attack point's examples on the source detector (through `storage` when the point is storage-aware,
    at its L-inf budget on the 8-bit grid) and deliver them within its budget: what the craft cell stores."""
    effective = effective_params(ap.attack, ap.backend, params.model_dump())
    det = attack_detector(ap, source, storage)
    warm_backend(ap.attack, ap.backend)
    raw, cost = measured(det, lambda: make_examples(ap, on_grid(ap.attack, params), det, images, labels, batch_size,
                                                     torch.device(device)))
    passes, seconds = cost.passes, cost.seconds
    budget = budget_of(ap.attack, ap.params)
    delivered = deliver(raw, images, *(budget or (None,)))
    if budget is None:
        return Crafted(raw, delivered, None, effective, passes, seconds)
    eps, norm = budget
    if norm == "linf" and grid_eps(eps) != eps:  # say what the attack ran at
        name = str(get_attack(ap.attack).budget)
        effective[name] = f"{effective[name]} (run at {grid_eps(eps):.5g}, on the 8-bit grid)"
    return Crafted(raw, delivered, delivered_budget(delivered, images, eps, norm), effective, passes, seconds)


def median_l2_before(ctx: RunContext, craft_key: str, where: str) -> float:
    """The median L2 norm, before storage, of the images the craft cell `craft_key` perturbed (it has run;
    `bench.attacks.controls.noise_radius`)."""
    craft = ctx.plan.crafts.get(craft_key)
    path = ctx.norms_before_path(craft) if craft else None
    if path is None or not path.is_file():
        raise BenchError(where, f"the norms of craft {craft_key[:12]} are not under {ctx.home}: run its attack first")
    return noise_radius(torch.load(path, weights_only=True).numpy())


@computes("craft", done=is_done)
def craft_examples(cell: CraftCell, ctx: RunContext) -> Record:
    ap = cell.attack
    params = ap.params_model()
    if ap.params.get("of"):  # a control sized by another attack's perturbations (noise_l2)
        params = params.model_copy(update={"l2": median_l2_before(ctx, ap.params["of"], f"attacks.{ap.key}")})
    ev = ctx.suite.evaluation
    storage = Storage.of(ev)
    source = ctx.variant_detector(cell.source)
    data = ctx.attacked_for(ap)
    made = craft(ap, params, source, storage, data.images, data.labels, ev.attack_batch_size, ctx.device)
    # of the fakes the source detects, those the attack gave back as they were, to 8-bit precision (before
    # storage adds its own change); an image already misclassified needs no perturbation
    detected = torch.from_numpy(source.predict_proba(data.images)[:, 1].numpy() < 0.5)
    same = unchanged(made.delivered, data.images)
    # of those, the share the attack's own output (float, before 8-bit rounding and storage) turns 'real' on the
    # bare source detector: the attack's success before storage, beside the scored success after it
    fooled_raw = torch.from_numpy(source.predict_proba(made.raw)[:, 1].numpy() >= 0.5)
    q = storage.store(made.delivered)
    buf = io.BytesIO()
    torch.save(q, buf)
    atomic_write(ctx.adversarial_path(cell), lambda fh: fh.write(buf.getvalue()))  # a full disk names the file
    l2, linf = perturbation_norms(data.images.numpy(), q.float().div(255).numpy())
    l2_before, linf_before = perturbation_norms(data.images.numpy(), made.delivered.float().div(255).numpy())
    nbuf = io.BytesIO()
    torch.save(torch.from_numpy(l2_before.astype("float32")), nbuf)
    atomic_write(ctx.norms_before_path(cell), lambda fh: fh.write(nbuf.getvalue()))
    n = len(data)
    metrics = {"l2": summary(l2), "linf": summary(linf), "l2_before": summary(l2_before),
               "linf_before": summary(linf_before), "effective_params": made.effective,
               "storage_aware": ap.storage_aware, "storage": storage.key(),
               "n": n, "seconds_per_image": made.seconds / n,
               "forward_per_image": made.passes.forward / n, "backward_per_image": made.passes.backward / n,
               "unchanged": Proportion(int((same & detected).sum()), int(detected.sum())).as_dict(),
               "success_before_storage": Proportion(int((fooled_raw & detected).sum()), int(detected.sum())).as_dict()}
    if made.budget is not None:
        metrics["budget"] = made.budget
    return Record(metrics)
