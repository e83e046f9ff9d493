"""The paper's Deep Image Prior experiment (section V-C), as a suite section.

Images are sampled per category from the test set and the stored adversarial examples:
for each attack shown in Table II and each threat model, perturbed fakes the classifier gets wrong
("fake-wrong") and right ("fake-correct"); plus unperturbed fake-correct and real-correct images.
Every sampled image's unperturbed version is classified correctly. Each image is purified by DIP
and the classifier scores the purified image; Tables III and IV compare it with no defense.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bench import FAKE, REAL
from bench.cells.context import RunContext
from bench.cells.registry import Record, computes
from bench.digests import digest
from bench.dip.config import DIPConfig
from bench.dip.engine import purify
from bench.dip.readout import choose_readout
from bench.errors import BenchError
from bench.metrics import Proportion, classification_metrics
from bench.suite.load import LoadedSuite
from bench.suite.plan import PLAN_VERSION, AttackCell, Plan, SectionCell

UNPERTURBED_FAKE = "unperturbed fake-correct"
UNPERTURBED_REAL = "unperturbed real-correct"


@dataclass
class Sampled:
    category: str
    image_id: str
    label: int
    image: torch.Tensor
    baseline_p_real: float


def dip_cells(ls: LoadedSuite, plan: Plan) -> list[SectionCell]:
    """The suite's DIP cell: it reads the adversarial examples of every Table II attack on the classifier."""
    s = ls.suite
    if s.dip is None:
        return []
    clf = s.dip.classifier
    crafts = sorted({c.craft.key for c in _cells_for(plan, clf)})
    key = digest(["dip", PLAN_VERSION, s.dip.model_dump(), plan.models[clf].key, crafts, plan.data_key, s.seed])
    return [SectionCell("dip", key, (plan.models[clf].key, *crafts), {"model": clf, "classifier": clf})]


def _cells_for(plan: Plan, classifier: str) -> list[AttackCell]:
    return [c for c in plan.attacks if c.target.name == classifier and c.attack.in_table and not c.target.defense]


def sample_categories(ctx: RunContext) -> tuple[list[Sampled], list[Sampled]]:
    """(evaluation images, calibration images), sampled per category with the suite's seed."""
    cfg = ctx.suite.dip
    det = ctx.detector(cfg.classifier)
    test = ctx.test_set
    p_clean = det.predict_proba(test.images)[:, 1].numpy()
    pools: dict[str, list[Sampled]] = {}
    attacked = ctx.attacked
    clean_attacked = det.predict_proba(attacked.images)[:, 1].numpy()
    for cell in _cells_for(ctx.plan, cfg.classifier):
        adv = ctx.adversarial(cell.craft).float().div(255)
        p_adv = det.predict_proba(adv)[:, 1].numpy()
        threat = "black-box" if cell.threat == "transfer" else "white-box"
        for i, image_id in enumerate(attacked.ids):
            if clean_attacked[i] >= 0.5:  # only images whose unperturbed version is classified correctly
                continue
            outcome = "fake-wrong" if p_adv[i] >= 0.5 else "fake-correct"
            cat = f"{threat} {cell.attack.key} {outcome}"
            pools.setdefault(cat, []).append(Sampled(cat, image_id, FAKE, adv[i], float(p_adv[i])))
    for i, image_id in enumerate(test.ids):
        label = int(test.labels[i])
        if label == FAKE and p_clean[i] < 0.5:
            pools.setdefault(UNPERTURBED_FAKE, []).append(
                Sampled(UNPERTURBED_FAKE, image_id, FAKE, test.images[i], float(p_clean[i])))
        elif label == REAL and p_clean[i] >= 0.5:
            pools.setdefault(UNPERTURBED_REAL, []).append(
                Sampled(UNPERTURBED_REAL, image_id, REAL, test.images[i], float(p_clean[i])))
    rng = np.random.default_rng([ctx.suite.seed, 0xD1B])
    evaluation, calibration = [], []
    for cat in sorted(pools):
        pool = pools[cat]
        order = rng.permutation(len(pool))
        k = min(cfg.per_category, len(pool))
        evaluation += [pool[j] for j in order[:k]]
        calibration += [pool[j] for j in order[k : k + cfg.calibration_per_category]]
    return evaluation, calibration


@computes("dip")
def run_dip(cell: SectionCell, ctx: RunContext) -> Record:
    """Sample, purify and score the DIP protocol's images (Tables III and IV, Fig. 6)."""
    cfg = ctx.suite.dip
    t0 = time.perf_counter()
    det = ctx.detector(cfg.classifier)
    evaluation, calibration = sample_categories(ctx)
    dcfg = DIPConfig.from_dict(cfg.params, where="dip.params")
    seed = int(cell.key[:8], 16)
    readout_info = None
    if dcfg.readout == "auto":
        if not calibration:
            raise BenchError("dip.calibration_per_category", "readout: auto needs calibration images (> 0)")
        choice = choose_readout(torch.stack([s.image for s in calibration]),
                                torch.tensor([s.label for s in calibration]), det, dcfg, seed=seed,
                                quiet=ctx.quiet, keys=[f"cal/{s.category}/{s.image_id}" for s in calibration])
        readout_info = choice.as_dict()
        dcfg = dcfg.model_copy(update={"readout": choice.iteration})
    every = max(1, dcfg.iterations // cfg.trajectory_points)
    images = torch.stack([s.image for s in evaluation])
    res = purify(images, dcfg, seed, record_every=every, classifier=det, quiet=ctx.quiet,
                 keys=[f"{s.category}/{s.image_id}" for s in evaluation], device=ctx.device)
    p_def = det.predict_proba(res.purified)[:, 1].numpy()
    labels = np.array([s.label for s in evaluation])
    base = np.array([s.baseline_p_real for s in evaluation])
    cats = [s.category for s in evaluation]
    metrics = summarise(labels, p_def, base, cats, cfg.thresholds)
    first = {}
    for i, c in enumerate(cats):
        first.setdefault(c, i)
    metrics.update({
        "readout": int(dcfg.readout), "readout_choice": readout_info, "iterations": int(dcfg.iterations),
        "config": dcfg.describe(), "n_images": len(evaluation), "n_calibration": len(calibration),
        "trajectory_iterations": [int(t) for t in res.iterations],
        "trajectories": {c: [float(v) for v in res.p_real[i]] for c, i in first.items()},
        "psnr_to_input": float(np.mean(res.psnr(images))),
        "seconds_per_image": (time.perf_counter() - t0) / max(1, len(evaluation)),
    })
    ids = [f"{s.category}/{s.image_id}" for s in evaluation]
    return Record(metrics, (ids, labels, p_def))


def summarise(labels: np.ndarray, p_def: np.ndarray, p_base: np.ndarray, categories: list[str],
              thresholds: list[float]) -> dict:
    """Table III (overall) and Table IV (per category) for each threshold, with the undefended baseline."""
    overall = {str(t): classification_metrics(labels, p_def, threshold=t) for t in thresholds}
    baseline = classification_metrics(labels, p_base, threshold=0.5)
    per_cat: dict[str, dict] = {}
    cats = np.array(categories)
    for c in sorted(set(categories)):
        m = cats == c
        row = {}
        for t in thresholds:
            pred = np.where(p_def[m] >= t, REAL, FAKE)
            row[str(t)] = Proportion(int((pred == labels[m]).sum()), int(m.sum())).as_dict()
        pred = np.where(p_base[m] >= 0.5, REAL, FAKE)
        row["baseline"] = Proportion(int((pred == labels[m]).sum()), int(m.sum())).as_dict()
        per_cat[c] = row
    wrong = np.array(["fake-wrong" in c for c in categories])
    other = ~wrong
    headline = {}
    for t in thresholds:
        pred = np.where(p_def >= t, REAL, FAKE)
        headline[str(t)] = {
            "fake_wrong": Proportion(int((pred[wrong] == labels[wrong]).sum()), int(wrong.sum())).as_dict(),
            "others": Proportion(int((pred[other] == labels[other]).sum()), int(other.sum())).as_dict(),
        }
    return {"overall": overall, "baseline": baseline, "per_category": per_cat, "headline": headline}
