"""The scoring cells: clean test images on a variant (Table I), input-gradient norms of a model, and one
craft's adversarial examples on a target variant (Table II)."""

from __future__ import annotations

import numpy as np
import torch

from bench.cells.context import RunContext
from bench.cells.registry import Record, computes
from bench.models.diagnostics import input_gradient_norm
from bench.results.metrics import Proportion, classification_metrics, perturbation_norms, summary
from bench.results.subset_metrics import attack_breakdown, clean_breakdown
from bench.smoothing.scoring import abstentions, smoothed_attack_metrics
from bench.suite.plan import AttackCell, CleanCell, GradNormCell


@computes("clean")
def score_clean(cell: CleanCell, ctx: RunContext) -> Record:
    det = ctx.variant_detector(cell.variant)
    test = ctx.test_set
    p_real = det.predict_proba(test.images)[:, 1].numpy()
    labels = test.labels.numpy()
    abstain = abstentions(det, p_real)  # a smoothed detector's PREDICT may abstain: wrong for either class
    metrics = classification_metrics(labels, p_real, abstain=abstain)
    metrics.update(clean_breakdown(labels, p_real, test.subsets, test.groups, abstain))  # AUROC CI, subsets, video
    return Record(metrics, (test.ids, labels, p_real))


@computes("gradnorm")
def gradient_norms(cell: GradNormCell, ctx: RunContext) -> Record:
    det = ctx.variant_detector(ctx.plan.variants[cell.model])
    mean, per_image = input_gradient_norm(det, ctx.test_set.images[: cell.n])
    finite = np.isfinite(per_image)
    return Record({"mean": float(mean), "median": float(np.median(per_image)), "n": int(len(per_image)),
                   "zero": int((per_image[finite] == 0).sum()), "non_finite": int((~finite).sum())})


@computes("attack")
def score_attack(cell: AttackCell, ctx: RunContext) -> Record:
    adv = ctx.adversarial(cell.craft).float().div(255)
    data = ctx.attacked_for(cell.attack)
    det = ctx.variant_detector(cell.target)
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
        # for the security-evaluation curves; two lists, so exports keep one column each
        "l2_per_image": {"ids": list(data.ids), "l2": [float(f"{v:.5g}") for v in l2]},
    }
    metrics.update(attack_breakdown(correct_adv, data.subsets))  # per subset, when the data has subsets
    metrics.update(smoothed_attack_metrics(det, data.ids, data.images, adv, p_adv, ctx.suite.evaluation))
    if cell.attack.reference is not None:  # a rerun check: the suite attack's stored examples of the same images
        metrics["reference_accuracy"] = _reference_accuracy(cell, ctx, len(adv))
    # per image: the L2 of what was scored, and of the attack's own output (the minimum-norm ranking axis)
    return Record(metrics, (data.ids, data.labels.numpy(), p_adv, l2, _l2_before(ctx, cell, len(adv))))


def _l2_before(ctx: RunContext, cell: AttackCell, n: int) -> np.ndarray | None:
    """Per-image L2 of the craft's perturbations before storage (its norms file), None when it is not there."""
    path = ctx.norms_before_path(cell.craft)
    if not path.is_file():
        return None
    values = torch.load(path, weights_only=True).numpy().astype(float)
    return values if len(values) == n else None


def _reference_accuracy(cell: AttackCell, ctx: RunContext, n: int) -> dict:
    """The target's accuracy on the first `n` stored examples of the craft `cell.attack.reference` (the suite attack
    a rerun check compares with): the same attacked fakes, in the same order, as the check's."""
    ref = ctx.plan.crafts[cell.attack.reference]
    if ref.attack.images is not None and ref.attack.images < n:
        raise ValueError(f"{cell.attack.key}: its reference attacked {ref.attack.images} fakes, fewer than its {n}")
    adv = ctx.adversarial(ref).float().div(255)[:n]
    p_ref = ctx.variant_detector(cell.target).predict_proba(adv)[:, 1].numpy()
    return Proportion(int((p_ref < 0.5).sum()), n).as_dict()
