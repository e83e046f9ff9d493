"""Per-subset and per-video metrics of a cell, from its per-image predictions (pure functions).

When the test images carry a subset (a manifest's `subset` or `source` column), the clean cell's metrics
get `by_subset: {subset: <Table I metrics>}` and an attack cell's `by_subset: {subset: <accuracy>}`.
When they carry groups that hold several images (frames of one video), the clean cell also gets `video`:
the video-level score is the mean P(real) over a video's frames, with its accuracy and AUROC.
Every AUROC comes with a 95% interval (DeLong's variance), every accuracy with its Wilson interval.
"""

from __future__ import annotations

import numpy as np

from bench import FAKE, REAL
from bench.results.metrics import Z95, Proportion, auroc, classification_metrics


def auroc_interval(labels: np.ndarray, p_real: np.ndarray) -> tuple[float, float]:
    """95% interval of the AUROC of P(real) against label real, from DeLong's variance (normal approximation,
    clipped to [0, 1]); (nan, nan) when a class is missing."""
    labels = np.asarray(labels)
    scores = np.asarray(p_real, dtype=np.float64)
    pos, neg = scores[labels == REAL], scores[labels == FAKE]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return (float("nan"), float("nan"))
    psi = (pos[:, None] > neg[None, :]).astype(np.float64) + 0.5 * (pos[:, None] == neg[None, :])
    a = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = Z95 * float(np.sqrt(var))
    return (max(0.0, a - half), min(1.0, a + half))


def with_auroc_interval(metrics: dict, labels: np.ndarray, p_real: np.ndarray) -> dict:
    lo, hi = auroc_interval(labels, p_real)
    return {**metrics, "auroc_lo": lo, "auroc_hi": hi}


def clean_breakdown(labels: np.ndarray, p_real: np.ndarray, subsets: list[str] | None,
                    groups: list[str] | None, abstain: np.ndarray | None = None) -> dict:
    """Extra metrics for a clean cell: the AUROC interval, `by_subset` and `video` where the data allows
    (`abstain`: see `classification_metrics`)."""
    labels, p_real = np.asarray(labels), np.asarray(p_real, dtype=np.float64)
    lo, hi = auroc_interval(labels, p_real)
    out: dict = {"auroc_lo": lo, "auroc_hi": hi}
    if subsets is not None:
        arr = np.asarray(subsets)
        out["by_subset"] = {
            s: with_auroc_interval(classification_metrics(labels[arr == s], p_real[arr == s], abstain=None if
                                                          abstain is None else np.asarray(abstain)[arr == s]),
                                   labels[arr == s], p_real[arr == s])
            for s in sorted(set(subsets))}
    if groups is not None:
        video = video_metrics(labels, p_real, groups)
        if video is not None:
            out["video"] = video
    return out


def attack_breakdown(correct: np.ndarray, subsets: list[str] | None) -> dict:
    """`by_subset: {subset: accuracy}` for an attack cell (`correct`: per attacked fake, still detected)."""
    if subsets is None:
        return {}
    correct, arr = np.asarray(correct, dtype=bool), np.asarray(subsets)
    return {"by_subset": {s: Proportion(int(correct[arr == s].sum()), int((arr == s).sum())).as_dict()
                          for s in sorted(set(subsets))}}


def video_scores(labels: np.ndarray, p_real: np.ndarray, groups: list[str]) -> tuple[list[str], np.ndarray,
                                                                                      np.ndarray]:
    """(videos, label per video, mean P(real) per video); a group whose frames disagree on the label is left
    out."""
    labels, p_real = np.asarray(labels), np.asarray(p_real, dtype=np.float64)
    arr = np.asarray(groups)
    names, vlabels, vscores = [], [], []
    for g in dict.fromkeys(groups):
        sel = arr == g
        if len(set(labels[sel].tolist())) != 1:
            continue
        names.append(g)
        vlabels.append(int(labels[sel][0]))
        vscores.append(float(p_real[sel].mean()))
    return names, np.asarray(vlabels, dtype=np.int64), np.asarray(vscores)


def video_metrics(labels: np.ndarray, p_real: np.ndarray, groups: list[str]) -> dict | None:
    """Video-level accuracy and AUROC (score: mean P(real) over the video's frames), or None when no group
    holds more than one image (then groups are not videos)."""
    counts = np.unique(np.asarray(groups), return_counts=True)[1]
    if counts.max(initial=0) < 2:
        return None
    names, vlabels, vscores = video_scores(labels, p_real, groups)
    correct = (np.where(vscores >= 0.5, REAL, FAKE) == vlabels)
    lo, hi = auroc_interval(vlabels, vscores)
    return {"n_videos": len(names), "frames_per_video": float(np.mean(counts)),
            "accuracy": Proportion(int(correct.sum()), len(names)).as_dict(),
            "auroc": auroc(vlabels, vscores), "auroc_lo": lo, "auroc_hi": hi}
