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
from bench.cells.keys import cell_key, declare_kind
from bench.cells.registry import Record, computes
from bench.dip.config import UNPERTURBED_FAKE, UNPERTURBED_REAL, DIPConfig
from bench.dip.engine import purify
from bench.dip.readout import ReadoutChoice, choose_readout
from bench.errors import BenchError
from bench.results.metrics import Proportion, classification_metrics
from bench.suite.loaded import LoadedSuite
from bench.suite.plan import AttackCell, Plan, SectionCell

declare_kind("dip", (3,))


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
    # "disjoint": calibration sources are never evaluated (the sampling's meaning changed, so its key did)
    key = cell_key("dip", "disjoint", s.dip.model_dump(exclude={"adaptive"}), plan.models[clf].key, crafts,
                   plan.data_key, s.seed)
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
    return split_pools(pools, cfg.per_category, cfg.calibration_per_category, ctx.suite.seed)


def split_pools(pools: dict[str, list[Sampled]], per_category: int, calibration_per_category: int,
                seed: int) -> tuple[list[Sampled], list[Sampled]]:
    """(evaluation, calibration) from each category's pool, without overlap of source images.

    One source image (a test fake) stands behind many categories (each attack, each threat). Calibration
    comes first: per category up to `calibration_per_category` images, preferring sources already held out
    (so that few are), and taking a new source only while the category keeps more than `per_category`
    images. Every held-out source is then excluded from evaluation in every category. Evaluation takes up
    to `per_category` images per category, preferring sources no earlier category used (distinct where the
    pools allow; the tables state how many distinct sources stand behind each n)."""
    rng = np.random.default_rng([seed, 0xD1B])
    shuffled = {cat: [pools[cat][j] for j in rng.permutation(len(pools[cat]))] for cat in sorted(pools)}
    held: set[str] = set()
    calibration: list[Sampled] = []
    for pool in shuffled.values():
        taken: list[Sampled] = []
        for s in sorted(pool, key=lambda s: s.image_id not in held):  # stable: held sources first, else random
            if len(taken) >= calibration_per_category:
                break
            if s.image_id in held or len(pool) - len(taken) > per_category:
                taken.append(s)
                held.add(s.image_id)
        calibration += taken
    used: dict[str, int] = {}
    evaluation: list[Sampled] = []
    for pool in shuffled.values():
        free = [s for s in pool if s.image_id not in held]
        chosen = sorted(free, key=lambda s: used.get(s.image_id, 0))[:per_category]  # stable: least used first
        for s in chosen:
            used[s.image_id] = used.get(s.image_id, 0) + 1
        evaluation += chosen
    return evaluation, calibration


def distinct_sources(samples: list[Sampled]) -> dict[str, int]:
    """How many distinct source images stand behind the samples: all, perturbed fake-wrong, the others."""
    wrong = {s.image_id for s in samples if "fake-wrong" in s.category}
    others = {s.image_id for s in samples if "fake-wrong" not in s.category}
    return {"all": len(wrong | others), "fake_wrong": len(wrong), "others": len(others)}


_CHOICES: dict[str, ReadoutChoice] = {}  # readouts chosen in this process, by DIP cell key (the adaptive cells reuse)


def dip_seed(dip_cell_key: str) -> int:
    """The seed of the DIP cell's purifications (its calibration and its evaluation)."""
    return int(dip_cell_key[:8], 16)


def calibrated(dcfg: DIPConfig, det, calibration: list[Sampled], dip_cell_key: str,
               quiet: bool = True) -> tuple[DIPConfig, dict | None]:
    """The DIP configuration with `readout: auto` resolved on the calibration images, as the DIP cell resolves
    it (same images, keys and seed, so the same choice on the same machine), and the choice as data."""
    if dcfg.readout != "auto":
        return dcfg, None
    if not calibration:
        raise BenchError("dip.calibration_per_category", "readout: auto needs calibration images (> 0)")
    if dip_cell_key not in _CHOICES:
        _CHOICES[dip_cell_key] = choose_readout(
            torch.stack([s.image for s in calibration]), torch.tensor([s.label for s in calibration]), det, dcfg,
            seed=dip_seed(dip_cell_key), quiet=quiet, keys=[f"cal/{s.category}/{s.image_id}" for s in calibration])
    choice = _CHOICES[dip_cell_key]
    return dcfg.model_copy(update={"readout": choice.iteration}), choice.as_dict()


@computes("dip")
def run_dip(cell: SectionCell, ctx: RunContext) -> Record:
    """Sample, purify and score the DIP protocol's images (Tables III and IV, Fig. 6)."""
    cfg = ctx.suite.dip
    t0 = time.perf_counter()
    det = ctx.detector(cfg.classifier)
    evaluation, calibration = sample_categories(ctx)
    dcfg = cfg.params
    seed = dip_seed(cell.key)
    dcfg, readout_info = calibrated(dcfg, det, calibration, cell.key, ctx.quiet)
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
        "distinct_sources": distinct_sources(evaluation), "calibration_sources": len({s.image_id for s in calibration}),
        "source_ids": {"evaluation": sorted({s.image_id for s in evaluation}),
                       "calibration": sorted({s.image_id for s in calibration})},
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
