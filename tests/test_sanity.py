"""The gradient-masking sanity checks fire on suspicious results and stay quiet on sound ones."""

from __future__ import annotations

from pathlib import Path

from bench.attacks.params import AttackParams, CWL2Params, FGSMParams, PGDParams
from bench.attacks.registry import get_attack
from bench.report.leaderboard import _best
from bench.report.sanity import run_checks
from bench.results.metrics import Proportion
from bench.results.query import attack_row
from bench.suite.loaded import AttackPoint
from bench.suite.plan import AttackCell, CraftCell, Variant

DOCS = Path(__file__).resolve().parents[1] / "docs" / "checks"
A = Variant("a", "a", None, "ka", "a")
B = Variant("b", "b", None, "kb", "b")
AD = Variant("a+jpeg", "a", "jpeg", "kad", "a + jpeg")


def _cell(attack: AttackPoint, src: Variant, dst: Variant, threat: str, k: int, n: int = 100, unchanged: int = 0):
    craft = CraftCell(attack, src, f"c-{attack.label}-{src.name}")
    cell = AttackCell(attack, src, dst, threat, craft, f"x-{attack.label}-{src.name}-{dst.name}")
    return attack_row(cell, {"accuracy": Proportion(k, n).as_dict()}, {"unchanged": Proportion(unchanged, n).as_dict()})


def _point(key: str, attack: str, params: AttackParams, in_table: bool, varying: tuple[str, ...] = ()) -> AttackPoint:
    """An attack point with the registered attack's declarations, as the suite loader builds it."""
    spec = get_attack(attack)
    d = spec.declaration()
    return AttackPoint(key, attack, "art", params.model_dump(), in_table, varying, d["title"], d["family"],
                       spec.norm_of(params), d["budget"], spec.deterministic_for(params))


def _fgsm(eps: float) -> AttackPoint:
    return _point("fgsm", "fgsm", FGSMParams(eps=eps), eps == 0.02, ("eps",))


def test_sound_results_raise_no_flags():
    cells = [_cell(_fgsm(0.01), A, A, "white-box", 30), _cell(_fgsm(0.02), A, A, "white-box", 5),
             _cell(_fgsm(0.02), B, A, "transfer", 40)]
    assert run_checks(cells) == []


def test_each_check_fires_and_has_a_doc():
    pgd = _point("pgd", "pgd", PGDParams(eps=0.04, steps=10, step_size=0.01), True)
    cells = [
        _cell(_fgsm(0.01), A, A, "white-box", 10),
        _cell(_fgsm(0.02), A, A, "white-box", 60),   # larger eps, more detected: not monotone
        _cell(_fgsm(0.02), B, A, "transfer", 5),     # transfer beats white-box
        _cell(pgd, A, A, "white-box", 90),           # PGD weaker than FGSM
        _cell(_fgsm(0.02), A, AD, "white-box", 80),  # defense never attacked adaptively
        _cell(_fgsm(0.001), B, B, "white-box", 97, unchanged=100),  # rounded away by 8-bit storage
    ]
    flags = run_checks(cells)
    fired = {f.check for f in flags}
    assert fired == {"transfer-beats-white-box", "not-monotone-in-budget", "single-step-beats-iterative",
                     "defense-only-non-adaptive", "attack-left-images-unchanged"}
    for f in flags:
        assert (DOCS / f"{f.check}.md").is_file()
        assert f.model in ("a", "a+jpeg", "b") and f.message


def test_an_attack_that_gives_up_is_flagged_once_per_craft():
    cw = _point("cw_l2", "cw_l2", CWL2Params(confidence=200.0), True)
    cells = [
        _cell(cw, A, A, "white-box", 98, unchanged=90),  # kappa out of reach: originals come back
        _cell(cw, A, B, "transfer", 99, unchanged=90),   # the same examples scored on B: not flagged again
        _cell(cw, B, B, "white-box", 3, unchanged=4),    # a working attack leaves few images unperturbed
    ]
    flags = run_checks(cells)
    assert [(f.check, f.model) for f in flags] == [("attack-left-images-unchanged", "a")]
    assert "90 of the 100" in flags[0].message and "kappa=200" in flags[0].message


def _clean(fake_hits: int, real_hits: int, n: int = 100) -> dict:
    return {"fake_recall": Proportion(fake_hits, n).as_dict(), "real_recall": Proportion(real_hits, n).as_dict()}


def test_degenerate_classifier_is_flagged_and_a_sound_one_is_not():
    flags = run_checks([], {"always-fake": _clean(99, 10), "sound": _clean(93, 95), "missing": None})
    assert [(f.check, f.model) for f in flags] == [("degenerate-classifier", "always-fake")]
    assert "leans to 'fake'" in flags[0].message and "10.0%" in flags[0].message
    assert (DOCS / "degenerate-classifier.md").is_file()


def test_rows_that_may_not_be_marked_best_never_are_whatever_their_labels():
    """Whether a row may be marked best is data on the row (flagged degenerate, an average), not its label text."""
    rows = [["sound", "-"], ["flagged", "-"], ["a grid's average", "-"], ["Average model †", "-"]]
    values = [[Proportion(k, 100).as_dict()] for k in (80, 99, 90, 85)]
    _best(rows, values, [True, False, False, True])
    assert rows[1][1] == "-" and rows[2][1] == "-" and rows[0][1] == "-"
    assert rows[3][1].startswith("**85.0%")
