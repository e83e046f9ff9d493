"""The new sanity checks on attack-frame rows: each fires on a broken evaluation and stays quiet on a sound one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.attacks.controls import NoiseParams, StorageParams
from bench.attacks.params import AttackParams, FGSMParams, PGDParams
from bench.attacks.registry import get_attack
from bench.report.sanity import run_checks
from bench.results.metrics import Proportion
from bench.results.query import attack_row
from bench.suite.loaded import AttackPoint
from bench.suite.plan import AttackCell, CraftCell, Variant

DOCS = Path(__file__).resolve().parents[1] / "docs" / "checks"
A = Variant("a", "a", None, "ka", "a")
AD = Variant("a+jpeg", "a", "jpeg", "kad", "a + jpeg")


def _point(key: str, attack: str, params: AttackParams, role: str = "attack") -> AttackPoint:
    spec = get_attack(attack)
    return AttackPoint(key, attack, "native", params.model_dump(), role == "attack", (), spec.title,
                       spec.family_of(params), spec.norm_of(params), spec.budget, spec.deterministic_for(params),
                       role=role, images=32 if role == "check" else None)


def _cell(ap: AttackPoint, src: Variant, dst: Variant, k: int, n: int = 100) -> dict:
    craft = CraftCell(ap, src, f"c-{ap.key}-{src.name}")
    cell = AttackCell(ap, src, dst, "white-box", craft, f"x-{ap.key}-{src.name}-{dst.name}")
    return attack_row(cell, {"accuracy": Proportion(k, n).as_dict()}, {"unchanged": Proportion(0, n).as_dict()})


def _fired(cells, check: str, gradnorms=None) -> list[str]:
    return [f.model for f in run_checks(cells, None, gradnorms) if f.check == check]


FGSM = _point("fgsm", "fgsm", FGSMParams(eps=0.02))
STORAGE = _point("storage", "storage", StorageParams(), "control")
NOISE = _point("noise", "noise", NoiseParams(eps=0.02), "control")
NOISE_OTHER = _point("noise", "noise", NoiseParams(eps=0.05), "control")


def test_noise_as_strong_as_attack():
    sound = [_cell(FGSM, A, A, 20), _cell(STORAGE, A, A, 90), _cell(NOISE, A, A, 88)]
    assert _fired(sound, "noise-as-strong-as-attack") == []
    noise_wins = [_cell(FGSM, A, A, 60), _cell(STORAGE, A, A, 90), _cell(NOISE, A, A, 61)]
    assert _fired(noise_wins, "noise-as-strong-as-attack") == ["a"]
    storage_wins = [_cell(FGSM, A, A, 60), _cell(STORAGE, A, A, 55)]
    assert _fired(storage_wins, "noise-as-strong-as-attack") == ["a"]
    other_budget = [_cell(FGSM, A, A, 60), _cell(NOISE_OTHER, A, A, 50)]  # noise at another budget: no match
    assert _fired(other_budget, "noise-as-strong-as-attack") == []


def test_storage_unaware_attacks_are_not_held_to_the_strength_checks():
    """The paper's setting (made on the bare detector, then stored): storage undoing it is its columns' finding,
    not a broken attack; the same results of a storage-aware attack fire both checks."""
    pgd = _point("pgd", "pgd", PGDParams(eps=0.04, steps=10, step_size=0.01))
    for aware in (True, False):
        p, f = replace(pgd, storage_aware=aware), replace(FGSM, storage_aware=True)
        cells = [_cell(f, A, A, 20), _cell(p, A, A, 90), _cell(STORAGE, A, A, 90)]
        fired = {c: _fired(cells, c) for c in ("single-step-beats-iterative", "noise-as-strong-as-attack")}
        assert fired == ({c: ["a"] for c in fired} if aware else {c: [] for c in fired})
    both_unaware = [_cell(replace(FGSM, storage_aware=False), A, A, 20), _cell(replace(pgd, storage_aware=False),
                                                                             A, A, 90)]
    assert _fired(both_unaware, "single-step-beats-iterative") == []


def test_unbounded_attack_fails():
    ub = _point("unbounded", "pgd", PGDParams(eps=1.0, steps=20, step_size=0.1), "check")
    assert _fired([_cell(ub, A, A, 1, 32)], "unbounded-attack-fails") == []  # 3% detected: within the threshold
    assert _fired([_cell(ub, A, A, 5, 32)], "unbounded-attack-fails") == ["a"]


def test_not_converged():
    base = _point("convergence", "pgd", PGDParams(steps=10), "check")
    strong = _point("convergence-stronger", "pgd", PGDParams(steps=20), "check")
    assert _fired([_cell(base, A, A, 10, 32), _cell(strong, A, A, 9, 32)], "not-converged") == []
    flags = [f for f in run_checks([_cell(base, A, A, 12, 32), _cell(strong, A, A, 6, 32)])
             if f.check == "not-converged"]
    assert [f.model for f in flags] == ["a"] and "steps=20" in flags[0].message


def test_not_converged_compares_a_rerun_with_the_suite_attack_on_the_same_images():
    from bench.attacks.params import APGDParams

    suite = _point("apgd", "apgd", APGDParams(steps=10))
    suite_row = _cell(suite, A, A, 50, 100)
    rerun = replace(_point("apgd-x2", "apgd", APGDParams(steps=20), "check"), reference=suite_row["craft_key"])

    def rerun_row(k: int, k_ref: int) -> dict:
        row = _cell(rerun, A, A, k, 32)
        row["metrics"]["reference_accuracy"] = Proportion(k_ref, 32).as_dict()
        return row

    assert rerun_row(10, 11)["reference"] == suite_row["craft_key"]
    assert _fired([suite_row, rerun_row(10, 11)], "not-converged") == []  # 3.1 points: within 5
    assert _fired([suite_row, rerun_row(12, 10)], "not-converged") == []  # the rerun did worse: no flag
    flags = [f for f in run_checks([suite_row, rerun_row(8, 11)]) if f.check == "not-converged"]
    assert [f.model for f in flags] == ["a"]  # 9.4 points more fooled with twice the steps
    assert "steps=20 instead of 10" in flags[0].message and "34.4%" in flags[0].message


def test_l2_noise_control_matches_an_l2_attack_at_its_budget():
    from bench.attacks.controls import NoiseL2Params

    pgd_l2 = _point("pgd", "pgd", PGDParams(eps=0.5, norm="l2", step_size=0.1))
    noise = _point("noise_l2", "noise_l2", NoiseL2Params(l2=0.5), "control")
    other = _point("noise_l2", "noise_l2", NoiseL2Params(l2=1.0), "control")
    assert _fired([_cell(pgd_l2, A, A, 60), _cell(noise, A, A, 61)], "noise-as-strong-as-attack") == ["a"]
    assert _fired([_cell(pgd_l2, A, A, 60), _cell(noise, A, A, 90)], "noise-as-strong-as-attack") == []
    assert _fired([_cell(pgd_l2, A, A, 60), _cell(other, A, A, 50)], "noise-as-strong-as-attack") == []
    assert _fired([_cell(FGSM, A, A, 60), _cell(noise, A, A, 50)], "noise-as-strong-as-attack") == []  # L-inf


def test_adaptive_weaker_than_non_adaptive():
    sound = [_cell(FGSM, A, AD, 40), _cell(FGSM, AD, AD, 30)]  # made on the base, then through the defense
    assert _fired(sound, "adaptive-weaker-than-non-adaptive") == []
    broken = [_cell(FGSM, A, AD, 40), _cell(FGSM, AD, AD, 70)]
    assert _fired(broken, "adaptive-weaker-than-non-adaptive") == ["a+jpeg"]


def test_defense_only_non_adaptive_compares_strength():
    pgd = _point("pgd", "pgd", PGDParams(eps=0.02))
    assert _fired([_cell(FGSM, A, AD, 40), _cell(pgd, A, AD, 20), _cell(FGSM, AD, AD, 15)],
                  "defense-only-non-adaptive") == []
    # an adaptive attack is present, but weaker than the strongest non-adaptive one (PGD around the defense)
    assert _fired([_cell(FGSM, A, AD, 40), _cell(pgd, A, AD, 20), _cell(FGSM, AD, AD, 35)],
                  "defense-only-non-adaptive") == ["a+jpeg"]
    assert _fired([_cell(FGSM, A, AD, 80)], "defense-only-non-adaptive") == ["a+jpeg"]  # no adaptive attack


def test_gradient_masked():
    ok = {"a": {"mean": 1.0, "median": 1.0, "n": 8, "zero": 0, "non_finite": 0}}
    assert _fired([], "gradient-masked", ok) == []
    zero = {"a+round": {"mean": 0.0, "median": 0.0, "n": 8, "zero": 8, "non_finite": 0}}
    assert _fired([], "gradient-masked", zero) == ["a+round"]
    nan = {"a+x": {"mean": float("nan"), "median": float("nan"), "n": 8, "zero": 0, "non_finite": 1}}
    assert _fired([], "gradient-masked", nan) == ["a+x"]


def test_controls_and_checks_do_not_feed_the_attack_checks():
    """A storage control returns every image unchanged: attack-left-images-unchanged must not read it."""
    row = _cell(STORAGE, A, A, 90)
    row["craft_metrics"] = {"unchanged": Proportion(90, 90).as_dict()}
    assert _fired([row], "attack-left-images-unchanged") == []
    assert replace(FGSM, role="attack") == FGSM


def test_every_new_check_has_a_doc():
    for check in ("unbounded-attack-fails", "noise-as-strong-as-attack", "gradient-masked", "not-converged",
                  "adaptive-weaker-than-non-adaptive", "defense-only-non-adaptive"):
        assert (DOCS / f"{check}.md").is_file(), check
