"""The adaptive DIP cells as the sanity checks and Table III read them, on constructed section rows.

- the convergence twin: twice the steps (PGD's steps, CW-L2's iterations), the same images, a key of its own;
- `not-converged` fires when the twin turns clearly more of the same images real through DIP, and stays quiet
  otherwise (on the images both scored, when the twin ran on fewer);
- `adaptive-weaker-than-non-adaptive` reads the adaptive DIP cells against the DIP cell's non-adaptive recovery;
- `attack-left-images-unchanged` reads their unchanged count;
- Table III's headline recovery is the lower of the non-adaptive and the strongest adaptive recovery.

The suite run with real (tiny) DIP cells and twins is in `test_dip_protocol.py`.
"""

from __future__ import annotations

import pytest

from bench.dip.adaptive import TWIN, AdaptivePoint, adaptive_points
from bench.dip.config import DIPAdaptiveConfig
from bench.dip.report import dip_recovery
from bench.report.sanity import run_checks
from bench.results.metrics import Proportion

THRESHOLDS = ("0.5", "0.25")


def _p(k: int, n: int) -> dict:
    return Proportion(k, n).as_dict()


def _adaptive(key: str, p_def: list[float], role: str = "attack", of: str | None = None,
              fooled_bare: int | None = None, recovered: tuple[int, int] | None = None, unchanged: int = 0,
              attack: str = "pgd") -> dict:
    """A sections-frame row of an adaptive DIP cell with per-image scores `p_def` (P(real) through DIP)."""
    n = len(p_def)
    ids = [f"fake{i:03d}" for i in range(n)]
    params = ({"eps": 0.02, "norm": "linf", "steps": 4, "step_size": 0.005, "random_start": False, "eot": 1}
              if attack == "pgd" else {"confidence": 5.0, "c_min": 10.0, "c_max": 10.0, "binary_search_steps": 1,
                                       "max_iterations": 8, "learning_rate": 0.1, "eot": 1, "abort_early": False})
    k_rec, n_rec = recovered if recovered else (0, fooled_bare or 0)
    by = {t: {"accuracy": _p(sum(p < float(t) for p in p_def), n), "recovered": _p(k_rec, n_rec)} for t in THRESHOLDS}
    metrics = {"attack": attack, "params": params, "restarts": 1, "image_ids": ids, "p_real_defended": p_def,
               "by_threshold": by, "fooled_bare": _p(fooled_bare or 0, n), "unchanged": _p(unchanged, n)}
    payload = {"classifier": "blur", "model": "blur", "attack": attack, "params": params, "role": role,
               "label": AdaptivePoint(attack, params, 1).title, "steps_factor": 2}
    if of:
        payload["of"] = of
    return {"kind": "dip-adaptive", "key": key, "payload": payload, "metrics": metrics, "device": "cpu"}


def _dip(fake_wrong: tuple[int, int]) -> dict:
    """A sections-frame row of the DIP cell with its non-adaptive recovery (perturbed fake-wrong)."""
    headline = {t: {"fake_wrong": _p(*fake_wrong), "others": _p(60, 64)} for t in THRESHOLDS}
    return {"kind": "dip", "key": "dipkey", "payload": {"classifier": "blur"}, "metrics": {"headline": headline},
            "device": "cpu"}


def _fired(sections: list[dict], check: str) -> list[str]:
    return [f.message for f in run_checks([], None, None, sections=sections) if f.check == check]


def test_twin_has_twice_the_steps():
    ad = DIPAdaptiveConfig.from_dict({
        "images": 16, "pgd": {"eps": [0.01, 0.02], "steps": 4, "step_size": 0.005, "eot": 1, "restarts": 1},
        "cw_l2": {"confidence": 5.0, "c_min": 10.0, "c_max": 10.0, "binary_search_steps": 1, "max_iterations": 6,
                  "learning_rate": 0.1, "eot": 1}})
    assert ad.convergence is not None and ad.convergence.steps_factor == 2  # twins by default
    for pt in adaptive_points(ad):
        twin = pt.scaled(ad.convergence.steps_factor)
        assert twin.steps == 2 * pt.steps
        changed = {k for k in pt.params if pt.params[k] != twin.params[k]}
        assert changed == {"steps" if pt.attack == "pgd" else "max_iterations"}  # nothing else differs
    assert DIPAdaptiveConfig.from_dict({"images": 4, "convergence": None}).convergence is None


NOT_FOOLED, FOOLED = 0.1, 0.9


def test_not_converged_fires_when_the_doubled_run_succeeds_much_more():
    regular = _adaptive("r", [FOOLED] * 4 + [NOT_FOOLED] * 12)
    twin = _adaptive("t", [FOOLED] * 8 + [NOT_FOOLED] * 8, role=TWIN, of="r")
    flags = _fired([regular, twin], "not-converged")
    assert len(flags) == 1 and "4 of 16" in flags[0] and "8 of 16" in flags[0]
    assert run_checks([], None, None, sections=[regular, twin])[0].model == "blur + DIP"


def test_not_converged_stays_quiet_when_doubling_changes_little():
    regular = _adaptive("r", [FOOLED] * 8 + [NOT_FOOLED] * 24)
    same = _adaptive("t", [FOOLED] * 8 + [NOT_FOOLED] * 24, role=TWIN, of="r")
    one_more = _adaptive("t", [FOOLED] * 9 + [NOT_FOOLED] * 23, role=TWIN, of="r")  # +3.1 points: within 5
    fewer = _adaptive("t", [FOOLED] * 2 + [NOT_FOOLED] * 30, role=TWIN, of="r")  # the twin did worse
    for twin in (same, one_more, fewer):
        assert _fired([regular, twin], "not-converged") == []
    other = _adaptive("t", [FOOLED] * 20 + [NOT_FOOLED] * 12, role=TWIN, of="someone-else")  # not its twin
    assert _fired([regular, other], "not-converged") == []


def test_not_converged_compares_the_images_both_scored():
    # the twin ran on the first 8 images only: 4 of them fooled by both runs, so no gain there, although the
    # regular cell's success over all its 16 images (4 of 16) is lower than the twin's (4 of 8)
    regular = _adaptive("r", [FOOLED] * 4 + [NOT_FOOLED] * 12)
    twin = _adaptive("t", [FOOLED] * 4 + [NOT_FOOLED] * 4, role=TWIN, of="r")
    assert _fired([regular, twin], "not-converged") == []
    twin_more = _adaptive("t", [FOOLED] * 6 + [NOT_FOOLED] * 2, role=TWIN, of="r")
    assert len(_fired([regular, twin_more], "not-converged")) == 1


def test_adaptive_weaker_reads_dip_adaptive_cells():
    dip = _dip((10, 20))  # DIP recovers 50% of the non-adaptive fooled fakes
    weak = _adaptive("r", [NOT_FOOLED] * 16, fooled_bare=10, recovered=(9, 10))  # 90% of the adaptive ones
    flags = _fired([dip, weak], "adaptive-weaker-than-non-adaptive")
    assert len(flags) == 1 and "90.0%" in flags[0] and "50.0%" in flags[0]
    strong = _adaptive("r", [FOOLED] * 16, fooled_bare=10, recovered=(1, 10))
    assert _fired([dip, strong], "adaptive-weaker-than-non-adaptive") == []
    none_fooled = _adaptive("r", [NOT_FOOLED] * 16, fooled_bare=0)  # no recovery to compare
    assert _fired([dip, none_fooled], "adaptive-weaker-than-non-adaptive") == []
    # a twin is a check, not the attack: it is never compared
    twin = _adaptive("t", [NOT_FOOLED] * 16, role=TWIN, of="r", fooled_bare=10, recovered=(10, 10))
    assert _fired([dip, strong, twin], "adaptive-weaker-than-non-adaptive") == []


def test_attack_left_images_unchanged_reads_dip_adaptive_cells():
    gave_up = _adaptive("r", [NOT_FOOLED] * 12, unchanged=9, attack="cw_l2")
    flags = _fired([gave_up], "attack-left-images-unchanged")
    assert len(flags) == 1 and "9 of the 12" in flags[0] and "kappa=5" in flags[0]
    assert _fired([_adaptive("r", [NOT_FOOLED] * 12, unchanged=2, attack="cw_l2")],
                  "attack-left-images-unchanged") == []


@pytest.mark.parametrize(("plain", "adaptive", "which"), [
    ((10, 20), [(2, 10), (6, 10)], "adaptive"),   # the strongest adaptive (20%) is below the non-adaptive 50%
    ((2, 20), [(2, 10), (6, 10)], "non-adaptive"),  # 10% non-adaptive is the lower
    ((10, 20), [(5, 10)], "non-adaptive"),        # a tie keeps the non-adaptive number
    ((10, 20), [], "non-adaptive"),                # no adaptive cell fooled the classifier alone
    ((0, 0), [(3, 10)], "adaptive"),               # no non-adaptive fooled fake at all
])
def test_table_iii_reports_the_lower_recovery(plain, adaptive, which):
    dip = _dip(plain)["metrics"]
    cells = [(f"attack {i}", _adaptive(f"r{i}", [FOOLED] * 16, fooled_bare=n, recovered=(k, n))["metrics"])
             for i, (k, n) in enumerate(adaptive)]
    cells.append(("none fooled", _adaptive("z", [NOT_FOOLED] * 16, fooled_bare=0)["metrics"]))  # no recovery
    rec = dip_recovery(dip, cells)
    assert set(rec) == set(THRESHOLDS)
    for o in rec.values():
        candidates = ([o["non_adaptive"]] if o["non_adaptive"]["n"] else []) + \
                     [m["by_threshold"]["0.5"]["recovered"] for _, m in cells if m["fooled_bare"]["k"]]
        assert o["dip"]["value"] == min(c["value"] for c in candidates)
        assert o["dip"]["n"] > 0 and o["dip"]["lo"] <= o["dip"]["value"] <= o["dip"]["hi"]  # with its n and interval
        assert (o["which"] == "non-adaptive") == (which == "non-adaptive")
        assert (o["non_adaptive"]["k"], o["non_adaptive"]["n"]) == plain  # the components beside it
        if adaptive:
            assert o["adaptive"]["value"] == min(k / n for k, n in adaptive)
            assert o["adaptive_label"] == f"attack {min(range(len(adaptive)), key=lambda i: adaptive[i][0])}"
        else:
            assert o["adaptive"] is None
