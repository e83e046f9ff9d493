"""The craft cell: run one attack point on the attacked fakes through its source variant, store the
adversarial images as the suite stores them (8-bit PNG or a JPEG round trip) under the home."""

from __future__ import annotations

import io
import time

import torch

from bench.atomic import atomic_write
from bench.attacks.controls import noise_radius
from bench.attacks.counting import count_passes
from bench.attacks.effective import effective_params
from bench.attacks.registry import run_attack
from bench.attacks.restarts import with_restarts
from bench.cells.context import RunContext
from bench.cells.registry import Record, computes
from bench.defenses.jpeg import jpeg_round_trip_uint8, to_uint8
from bench.errors import BenchError
from bench.metrics import Proportion, perturbation_norms, summary
from bench.suite.plan import CraftCell


def quantise(adv: torch.Tensor, storage: str, jpeg_quality: int) -> torch.Tensor:
    """What an image file holds: 8-bit values, or a JPEG round trip. Returns uint8 NCHW."""
    u8 = to_uint8(adv)
    return u8 if storage == "png" else jpeg_round_trip_uint8(u8, jpeg_quality)


def is_done(craft: CraftCell, ctx: RunContext) -> bool:
    """A craft is done only while its adversarial examples (and their norms before storage) are on disk too."""
    return ctx.adversarial_path(craft).is_file() and ctx.norms_before_path(craft).is_file()


def attack_with_restarts(ap, det, x: torch.Tensor, y: torch.Tensor, params) -> torch.Tensor:
    """The attack point on a batch; with `ap.restarts` > 1, each restart runs on the images no earlier one broke."""
    if ap.restarts <= 1:
        return run_attack(ap.attack, ap.backend, det, x, y, params)

    def once(xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        adv = run_attack(ap.attack, ap.backend, det, xs, ys, params)
        pred = torch.from_numpy((det.predict_proba(adv)[:, 1].numpy() >= 0.5).astype("int64"))
        fooled = pred != ys.cpu()
        return fooled, adv

    broken = torch.zeros(len(x), dtype=torch.bool)
    return with_restarts(x.cpu(), y.cpu(), broken, ap.restarts, lambda xs, ys: once(xs.to(x.device), ys.to(x.device)))


def median_l2_before(ctx: RunContext, craft_key: str, where: str) -> float:
    """The median L2 norm, before storage, of the images the craft cell `craft_key` perturbed (it has run;
    `bench.attacks.controls.noise_radius`)."""
    craft = ctx.plan.crafts.get(craft_key)
    path = ctx.norms_before_path(craft) if craft else None
    if path is None or not path.is_file():
        raise BenchError(where, f"the norms of craft {craft_key[:12]} are not under {ctx.home}: run its attack first")
    return noise_radius(torch.load(path, weights_only=True).numpy())


@computes("craft", done=is_done)
def craft_examples(craft: CraftCell, ctx: RunContext) -> Record:
    ap = craft.attack
    params = ap.params_model()
    if ap.params.get("of"):  # a control sized by another attack's perturbations (noise_l2)
        params = params.model_copy(update={"l2": median_l2_before(ctx, ap.params["of"], f"attacks.{ap.key}")})
    det = ctx.variant_detector(craft.source)
    data = ctx.attacked_for(ap)
    ev = ctx.suite.evaluation
    bs = ev.attack_batch_size
    outs = []
    t0 = time.perf_counter()
    with count_passes(det) as passes:  # the attack's cost (a score-based attack's queries are its forward passes)
        for i in range(0, len(data), bs):
            x, y = data.images[i : i + bs], data.labels[i : i + bs]
            adv = attack_with_restarts(ap, det, x.to(ctx.device), y.to(ctx.device), params)
            if adv.shape != x.shape or not torch.isfinite(adv).all():
                raise BenchError(f"attacks.{ap.key}", f"backend {ap.backend} returned a bad batch {tuple(adv.shape)}")
            outs.append(adv.cpu())
    seconds = time.perf_counter() - t0
    raw = torch.cat(outs)
    # of the fakes the source detects, those the attack gave back as they were, to 8-bit precision (before
    # storage adds its own change); an image already misclassified needs no perturbation
    detected = torch.from_numpy(det.predict_proba(data.images)[:, 1].numpy() < 0.5)
    same = (to_uint8(raw) == to_uint8(data.images)).flatten(1).all(1)
    q = quantise(raw, ev.storage, ev.jpeg_quality)
    buf = io.BytesIO()
    torch.save(q, buf)
    atomic_write(ctx.adversarial_path(craft), lambda fh: fh.write(buf.getvalue()))  # a full disk names the file
    l2, linf = perturbation_norms(data.images.numpy(), q.float().div(255).numpy())
    l2_before, linf_before = perturbation_norms(data.images.numpy(), raw.numpy())  # the attack's own output
    nbuf = io.BytesIO()
    torch.save(torch.from_numpy(l2_before.astype("float32")), nbuf)
    atomic_write(ctx.norms_before_path(craft), lambda fh: fh.write(nbuf.getvalue()))
    return Record({"l2": summary(l2), "linf": summary(linf), "l2_before": summary(l2_before),
                   "linf_before": summary(linf_before), "effective_params": effective_params(
                       ap.attack, ap.backend, params.model_dump()),
                   "n": len(data), "seconds_per_image": seconds / len(data),
                   "forward_per_image": passes.forward / len(data), "backward_per_image": passes.backward / len(data),
                   "unchanged": Proportion(int((same & detected).sum()), int(detected.sum())).as_dict()})
