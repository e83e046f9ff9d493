"""The `certify` cell kind: CERTIFY (Cohen et al. 2019) on every attacked fake, for each smoothed variant.

One cell per variant behind a `smoothing` defense (the suite's `certify:` settings: n0, n, alpha). The certified
input is the stored fake, storage(x): the image the smoothed detector receives when the fake is scored. Per image
the cell stores CERTIFY's class (or an abstention), the radius sigma * Phi^-1(pA_lower), nA and pA_lower, and
PREDICT's vote on the same input; and the certified accuracy at radius 0 and at each of the suite's
`report.l2_budgets` (a fake counts at radius r when CERTIFY returns "fake" with a radius of at least r: an
abstention or a wrong class counts as not detected), each with its Wilson interval and n. The report computes
its curves from these per-image values, from the store alone.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench import FAKE
from bench.attacks.storage_spec import storage_key
from bench.cells.context import RunContext
from bench.cells.keys import cell_key, declare_kind
from bench.cells.registry import Record, computes
from bench.defenses.registry import resolve_defense_class
from bench.errors import BenchError
from bench.results.metrics import Proportion
from bench.smoothing.defense import RandomizedSmoothing, SmoothedDetector
from bench.smoothing.scoring import stored
from bench.smoothing.stats import ABSTAIN
from bench.suite.loaded import LoadedSuite
from bench.suite.plan import Plan, SectionCell

declare_kind("certify", (3, 1))
CLASS_NAMES = {FAKE: "fake", 1: "real", ABSTAIN: "abstain"}


def is_smoothing(ls: LoadedSuite, defense: str) -> bool:
    """Whether the suite's evaluation-time defense `defense` is randomized smoothing (or a subclass of it)."""
    d = ls.suite.defenses[defense]
    try:
        cls = resolve_defense_class(d.use, f"defenses.{defense}", ls.base_dir)
    except BenchError:
        return False
    return issubclass(cls, RandomizedSmoothing)


def certify_cells(ls: LoadedSuite, plan: Plan) -> list[SectionCell]:
    """One cell per smoothed variant, keyed by the variant (model and defense parameters), the data, the attacked
    fakes, the storage and the CERTIFY settings."""
    cfg = ls.suite.certify
    if cfg is None:
        return []
    storage = storage_key(ls.suite.evaluation)
    budgets = sorted(float(b) for b in ls.suite.report.l2_budgets)
    out = []
    for v in plan.variants.values():
        if v.defense is None or not is_smoothing(ls, v.defense):
            continue
        settings = cfg.model_dump()
        key = cell_key("certify", v.key, plan.data_key, plan.attack_ids, storage, settings, budgets)
        payload = {"variant": v.name, "model": v.model, "defense": v.defense, **settings, "budgets": budgets}
        out.append(SectionCell("certify", key, plan.variant_deps(v), payload))
    return out


def certified_accuracy(cls: np.ndarray, radius: np.ndarray, radii: list[float]) -> list[dict[str, Any]]:
    """Per radius r: the share of the (fake) images CERTIFY calls fake with a radius of at least r."""
    ok = cls == FAKE
    r = np.where(ok, radius, -math.inf)
    return [{"radius": float(e), **Proportion(int((ok & (r >= e)).sum()), len(cls)).as_dict()} for e in radii]


def _num(x: float) -> float | None:
    return None if not math.isfinite(float(x)) else float(f"{float(x):.6g}")


@computes("certify")
def certify_attacked(cell: SectionCell, ctx: RunContext) -> Record:
    p = cell.payload
    v = ctx.plan.variants[p["variant"]]
    det = ctx.variant_detector(v)
    if not isinstance(det, SmoothedDetector):
        raise BenchError(f"defenses.{v.defense}", "is not a smoothing defense: there is nothing to certify")
    data = ctx.attacked
    x0 = stored(data.images, ctx.suite.evaluation)  # the certified input: the fake as the detector receives it
    t0 = time.perf_counter()
    cert = det.certify(x0, int(p["n0"]), int(p["n"]), float(p["alpha"]))
    seconds = time.perf_counter() - t0
    vote = det.predict(x0)
    cls, radius = cert["class"], cert["radius"]
    correct_radius = np.where(cls == FAKE, radius, 0.0)  # abstentions and wrong classes: no certificate for "fake"
    s = det.smoothing
    return Record({
        "sigma": s.sigma, "n0": int(p["n0"]), "n": int(p["n"]), "alpha": float(p["alpha"]),
        "predict_n": s.n, "predict_alpha": s.alpha, "batch": s.batch,
        "images": {"ids": list(data.ids), "class": [CLASS_NAMES[int(c)] for c in cls],
                   "radius": [_num(r) for r in radius], "n_a": [int(k) for k in cert["n_a"]],
                   "p_lower": [_num(q) for q in cert["p_lower"]], "predict": [CLASS_NAMES[int(c)] for c in vote]},
        "certified": certified_accuracy(cls, radius, [0.0, *p["budgets"]]),
        "median_radius": float(np.median(correct_radius)) if len(cls) else float("nan"),
        "abstained": Proportion(int((cls == ABSTAIN).sum()), len(cls)).as_dict(),
        "n_images": len(cls), "seconds": seconds, "samples_per_second": (int(p["n0"]) + int(p["n"])) * len(cls)
        / max(seconds, 1e-9),
    })
