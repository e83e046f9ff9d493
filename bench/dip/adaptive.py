"""Adaptive attacks through DIP: PGD and CW-L2 against the full purifier, Table III's adaptive rows.

The paper evaluates DIP only on adversarial examples made against the undefended classifier. Here the attack
sees the defense: every forward pass purifies the whole batch with DIP (the batched engine, read out at the
calibrated iteration, where the evaluation reads out) and classifies the result; the gradient passes through DIP
by the straight-through estimate (BPDA: `x + (f(x) - x).detach()`, `DIPPreprocessor` is declared
non-differentiable), and each gradient is the mean over `eot` purifications with different DIP seeds (EOT,
`bench.attacks.eot`; `DIPPreprocessor(resample=True)` draws a new seed per call). The detector the attack
differentiates is built in one place, `attacked_detector`. The attacked images are fakes the classifier detects,
none of them a calibration source. The final adversarial images go through the suite's storage and are scored
through DIP with the evaluation's seed, as the non-adaptive rows are.

One cell per attack point (each PGD budget, CW-L2), and beside each its convergence twin (`dip.adaptive.
convergence`): the same attack with twice the steps (PGD's steps, CW-L2's iterations) on the same images (or the
first of them), which the sanity check `not-converged` compares with it. Cells of version 2 (issue 20): the
attack's DIP reads out at the calibrated iteration by default, and every cell records its per-image scores and how
many images the attack returned unchanged.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench import FAKE
from bench.attacks.making import measured, run_point, unchanged
from bench.attacks.registry import get_attack
from bench.attacks.storage import Storage, storage_key, stored_detector, to_uint8
from bench.cells.context import RunContext
from bench.cells.keys import cell_key, declare_kind
from bench.cells.registry import Record, computes
from bench.defenses.apply import preprocessed
from bench.dip.adaptive_point import ATTACK, TWIN, AdaptivePoint
from bench.dip.config import DIPAdaptiveConfig, DIPConfig
from bench.dip.engine import purify
from bench.dip.protocol import Sampled, calibrated, dip_seed, sample_categories
from bench.models.detector import Detector
from bench.results.metrics import Proportion
from bench.suite.loaded import LoadedSuite
from bench.suite.plan import Plan, SectionCell

KIND = "dip-adaptive"
# The adaptive cells' version (its own, then the plan version all kinds shared: `bench.cells.registry`). 2 (issue
# 20): read out at the calibrated iteration by default, convergence twins, per-image scores and unchanged images
# recorded. 3: made through the suite's storage. A change to their meaning makes it (3, 3, 1).
declare_kind(KIND, (3, 3))


def adaptive_points(ad: DIPAdaptiveConfig) -> list[AdaptivePoint]:
    """Every adaptive attack of the config, every parameter explicit."""
    points: list[AdaptivePoint] = []
    if ad.pgd is not None:
        for eps in ad.pgd.eps:
            points.append(AdaptivePoint("pgd", {"eps": eps, "norm": "linf", "steps": ad.pgd.steps,
                                                "step_size": ad.pgd.step_size, "random_start": ad.pgd.restarts > 1,
                                                "eot": ad.pgd.eot}, ad.pgd.restarts))
    if ad.cw_l2 is not None:
        points.append(AdaptivePoint("cw_l2", {**ad.cw_l2.model_dump(), "abort_early": False}, 1))
    return points


def adaptive_cells(ls: LoadedSuite, plan: Plan) -> list[SectionCell]:
    """One cell per adaptive attack point and, after each, its convergence twin; each reads what the DIP cell reads
    (the classifier, the crafts)."""
    s = ls.suite
    if s.dip is None or s.dip.adaptive is None or not plan.section("dip"):
        return []
    dip = plan.section("dip")[0]
    ad = DIPAdaptiveConfig.from_dict(s.dip.adaptive)
    ev = s.evaluation
    storage = storage_key(ev)
    cells = []
    for pt in adaptive_points(ad):
        key = cell_key(KIND, "test-fakes", dip.key, pt.attack, pt.params, pt.restarts, ad.images, ad.readout,
                       storage)
        base = {"model": s.dip.classifier, "classifier": s.dip.classifier, "restarts": pt.restarts,
                "images": ad.images, "readout": ad.readout, "dip_cell": dip.key}
        cells.append(SectionCell(KIND, key, dip.deps, {**base, "attack": pt.attack, "params": pt.params,
                                                       "subset": ad.images, "role": ATTACK, "label": pt.title}))
        if ad.convergence is None:
            continue
        factor = ad.convergence.steps_factor
        subset = min(ad.images, ad.convergence.images or ad.images)
        twin = pt.scaled(factor)
        tkey = cell_key(KIND, TWIN, key, factor, subset)
        cells.append(SectionCell(KIND, tkey, dip.deps, {
            **base, "attack": twin.attack, "params": twin.params, "subset": subset, "role": TWIN, "of": key,
            "steps_factor": factor, "label": f"{twin.title} (convergence twin: {factor}x the steps)"}))
    return cells


def adaptive_images(ctx: RunContext, calibration: list[Sampled], n: int,
                    subset: int | None = None) -> tuple[list[str], torch.Tensor]:
    """(ids, images) of up to `n` test fakes the DIP classifier detects, none a calibration source; a seeded
    choice, in test-set order. Drawn from every test fake, not only the suite's attacked ones, so that `n` is
    reached when the attacked set is small. `subset`: only the first that many of the `n` drawn (a twin's)."""
    det = ctx.detector(ctx.suite.dip.classifier)
    data = ctx.test_set
    held = {s.image_id for s in calibration}
    p = det.predict_proba(data.images)[:, 1].numpy()
    labels = data.labels.numpy()
    ok = [i for i, image_id in enumerate(data.ids) if labels[i] == FAKE and p[i] < 0.5 and image_id not in held]
    rng = np.random.default_rng([ctx.suite.seed, 0xADA])
    drawn = [ok[j] for j in rng.permutation(len(ok))[:n]]
    chosen = sorted(drawn[: n if subset is None else min(n, subset)])
    return [data.ids[i] for i in chosen], data.images[chosen]


def attacked_detector(classifier: Detector, purifier, storage: Storage) -> Detector:
    """What the adaptive attack differentiates: the suite's storage (`bench.attacks.storage`: the stored image
    forward, its gradient model backward), then DIP (a `DIPPreprocessor`, its straight-through gradient), then
    the classifier, as one detector taking [0, 1] images: the image the adversary delivers is stored before DIP
    purifies it, so every success the attack judges is judged on the stored image."""
    return stored_detector(preprocessed(classifier, purifier), storage).eval()


def craft_adaptive(defended: Detector, pt: AdaptivePoint, x: torch.Tensor, y: torch.Tensor,
                   device: torch.device) -> torch.Tensor:
    """The attack point on `defended` (native backend, as the craft cell runs a point: `bench.attacks.making`),
    with its restarts on the images not yet fooled, judged on the attack's output through `defended`."""
    params = get_attack(pt.attack).params.model_validate(pt.params)

    def fooled(adv: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return defended(adv.to(device)).argmax(1).cpu() != ys

    return run_point(pt.attack, "native", params, pt.restarts, defended, x.to(device), y.to(device), fooled)


@computes(KIND)
def run_dip_adaptive(cell: SectionCell, ctx: RunContext) -> Record:
    """Attack through DIP (BPDA + EOT), store, purify with the evaluation seed, score."""
    cfg, pay = ctx.suite.dip, cell.payload
    det = ctx.detector(cfg.classifier)
    _, calibration = sample_categories(ctx)
    dcfg, readout_info = calibrated(DIPConfig.from_dict(cfg.params, where="dip.params"), det, calibration,
                                    pay["dip_cell"], ctx.quiet)
    seed = dip_seed(pay["dip_cell"])
    ids, x = adaptive_images(ctx, calibration, int(pay["images"]), int(pay.get("subset", pay["images"])))
    y = torch.full((len(ids),), FAKE, dtype=torch.int64)
    # lazy: the preprocessor subclasses ART's, slow to import, and a suite without adaptive DIP cells never needs it
    from bench.dip.preprocessor import DIPPreprocessor

    # a different seed stream from the evaluation's: the attack never sees the DIP that scores it
    attack_readout = dcfg.readout if pay.get("readout", "calibrated") == "calibrated" else int(pay["readout"])
    acfg = dcfg.model_copy(update={"readout": min(int(attack_readout), dcfg.iterations)})
    purifier = DIPPreprocessor(acfg, seed=seed + 1, quiet=True, cache_size=0, resample=True)
    storage = Storage.of(ctx.suite.evaluation)
    defended = attacked_detector(det, purifier, storage)
    pt = AdaptivePoint(pay["attack"], pay["params"], int(pay["restarts"]))
    t0 = time.perf_counter()
    adv, cost = measured(defended, lambda: craft_adaptive(defended, pt, x, y, ctx.device).cpu())
    passes, seconds_attack = cost.passes, cost.seconds
    stored = storage.store(to_uint8(adv)).float().div(255)
    res = purify(stored, dcfg, seed, quiet=ctx.quiet, keys=[f"adaptive/{i}" for i in ids], device=ctx.device)
    p_def = det.predict_proba(res.purified)[:, 1].numpy()
    p_bare = det.predict_proba(stored)[:, 1].numpy()
    linf = (stored - x).flatten(1).abs().max(1).values.numpy()
    l2 = (stored - x).flatten(1).norm(dim=1).numpy()
    same = unchanged(to_uint8(adv), x)  # before storage, to 8-bit precision
    metrics = summarise_adaptive(p_bare, p_def, cfg.thresholds)
    purifications = passes.forward / max(1, len(ids))
    metrics.update({
        "attack": pt.attack, "params": pt.params, "restarts": pt.restarts, "role": pay.get("role", ATTACK),
        "of": pay.get("of"), "steps": pt.steps,
        "readout": int(dcfg.readout), "attack_readout": int(acfg.readout), "readout_choice": readout_info,
        "iterations": int(dcfg.iterations),
        "n_images": len(ids), "distinct_sources": len(set(ids)),
        "image_ids": list(ids), "p_real_defended": [float(v) for v in p_def],
        "unchanged": Proportion(int(same.sum()), len(ids)).as_dict(),
        "purifications_per_image": purifications,
        "seconds_attack": seconds_attack, "seconds": time.perf_counter() - t0,
        "ms_per_image_iteration": 1000 * seconds_attack / max(1, passes.forward * int(acfg.readout)),
        "seconds_per_image_step": seconds_attack / max(1, len(ids) * pt.steps * pt.restarts),
        "linf_median": float(np.median(linf)) if len(linf) else None,
        "l2_median": float(np.median(l2)) if len(l2) else None,
    })
    return Record(metrics, ([f"adaptive/{i}" for i in ids], y.numpy(), p_def))


def summarise_adaptive(p_bare: np.ndarray, p_def: np.ndarray, thresholds: list[float]) -> dict:
    """Per threshold: of the stored adversarial fakes that fool the bare classifier (P(real) >= 0.5), the share
    DIP recovers (the paper's "fake-wrong" row: 95% at 0.25), and DIP's accuracy on all of them (1 - the
    attack's success through DIP); plus how many fool the bare classifier at all."""
    fooled = p_bare >= 0.5
    out: dict = {"fooled_bare": Proportion(int(fooled.sum()), len(p_bare)).as_dict(), "by_threshold": {}}
    for t in thresholds:
        detected = p_def < t
        out["by_threshold"][str(t)] = {
            "recovered": Proportion(int((detected & fooled).sum()), int(fooled.sum())).as_dict(),
            "accuracy": Proportion(int(detected.sum()), len(p_def)).as_dict(),
        }
    return out
