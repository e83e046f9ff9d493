"""Automatic sanity checks for gradient masking and broken evaluations (in the spirit of AutoAttack's flags).

Each check looks at stored results only and, when it fires, names the model, the attack and the
numbers, and links its own doc in `docs/checks/`. A flag is a reason to look, not a verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bench.store import CellResult
from bench.suite.plan import AttackCell

# A difference counts only when the 95% intervals do not overlap, or by this margin when n is large.
MARGIN = 0.05


@dataclass(frozen=True)
class Flag:
    check: str
    model: str
    message: str

    @property
    def doc(self) -> str:
        return f"docs/checks/{self.check}.md"


def _acc(r: CellResult) -> dict:
    return r.metrics["accuracy"]


def _clearly_higher(a: dict, b: dict) -> bool:
    """a's accuracy is above b's by more than MARGIN and their 95% intervals do not overlap."""
    return a["value"] - b["value"] > MARGIN and a["lo"] > b["hi"]


def transfer_beats_white_box(cells: list[tuple[AttackCell, CellResult | None]]) -> Iterator[Flag]:
    """Transfer examples from another model fool the target more than examples made on the target itself."""
    white = {(c.target.name, c.attack): r for c, r in cells if r and c.threat == "white-box"
             and not (c.source.name == c.target.name and c.target.defense)}
    for c, r in cells:
        if r is None or c.threat != "transfer":
            continue
        w = white.get((c.target.name, c.attack))
        if w and _clearly_higher(_acc(w), _acc(r)):
            yield Flag("transfer-beats-white-box", c.target.name,
                       f"{c.attack.label}: white-box accuracy {_acc(w)['value']:.1%} > transfer from "
                       f"{c.source.name} {_acc(r)['value']:.1%}")


def not_monotone_in_budget(cells: list[tuple[AttackCell, CellResult | None]]) -> Iterator[Flag]:
    """A larger perturbation budget leaves clearly more fakes detected than a smaller one."""
    groups: dict[tuple, list[tuple[float, dict]]] = {}
    for c, r in cells:
        if r is None or "eps" not in type(c.attack.params).model_fields or len(c.attack.varying) != 1 \
                or c.attack.varying[0] != "eps":
            continue
        groups.setdefault((c.attack.key, c.source.name, c.target.name), []).append((c.attack.params.eps, _acc(r)))
    for (key, src, dst), pts in groups.items():
        pts.sort(key=lambda t: t[0])
        for (e1, a1), (e2, a2) in zip(pts, pts[1:], strict=False):
            if _clearly_higher(a2, a1):
                yield Flag("not-monotone-in-budget", dst,
                           f"{key} from {src}: eps={e2} leaves {a2['value']:.1%} detected, eps={e1} only "
                           f"{a1['value']:.1%}")


def single_step_beats_iterative(cells: list[tuple[AttackCell, CellResult | None]]) -> Iterator[Flag]:
    """FGSM (one step) fools a model more than an iterative attack (PGD, CW) with a larger or equal budget."""
    fgsm = [(c, r) for c, r in cells if r and c.attack.attack == "fgsm" and c.threat == "white-box"]
    iterative = [(c, r) for c, r in cells if r and c.attack.attack in ("pgd", "cw_l2") and c.threat == "white-box"]
    for cf, rf in fgsm:
        for ci, ri in iterative:
            if ci.target.name != cf.target.name or ci.source.name != cf.source.name:
                continue
            if ci.attack.attack == "pgd" and not (ci.attack.params.norm == "linf"
                                                  and ci.attack.params.eps >= cf.attack.params.eps):
                continue
            if _clearly_higher(_acc(ri), _acc(rf)):
                yield Flag("single-step-beats-iterative", cf.target.name,
                           f"{ci.attack.label} leaves {_acc(ri)['value']:.1%} detected, "
                           f"{cf.attack.label} only {_acc(rf)['value']:.1%}")


def defense_only_non_adaptive(cells: list[tuple[AttackCell, CellResult | None]]) -> Iterator[Flag]:
    """A defended model looks robust, but was only attacked through its undefended base (no adaptive attack)."""
    adaptive = {c.target.name for c, r in cells if c.target.defense and c.source.name == c.target.name}
    seen = set()
    for c, r in cells:
        v = c.target
        if r is None or not v.defense or v.name in adaptive or v.name in seen:
            continue
        if c.threat == "white-box" and _acc(r)["value"] > 0.5:
            seen.add(v.name)
            yield Flag("defense-only-non-adaptive", v.name,
                       f"{c.attack.label}: {_acc(r)['value']:.1%} detected, but no attack went through the "
                       f"defense itself; set `adaptive: true` on the defense to add a BPDA attack")


# An attack that returns at least this share of the fakes the model detects unperturbed (to 8-bit precision)
# found nothing it accepts on most of them.
MAX_UNCHANGED = 0.5


def attack_gave_up(c: AttackCell, r: CellResult | None) -> bool:
    """A white-box cell (made on the model it scores) whose attack returned at least MAX_UNCHANGED of the
    fakes the model detects unperturbed. Its examples are mostly the originals, for every cell made from them."""
    if r is None or c.threat != "white-box" or c.source.name != c.target.name:
        return False
    u = r.metrics.get("unchanged")  # among the fakes the model detects; the attack's output before storage
    return u is not None and u["value"] >= MAX_UNCHANGED


def attack_left_images_unchanged(cells: list[tuple[AttackCell, CellResult | None]]) -> Iterator[Flag]:
    """A white-box attack returned most of the fakes the model detects exactly as they were: it gave up on
    them (a CW-L2 confidence kappa the model cannot reach, a budget below one 8-bit level), so the accuracy
    under it (and under its transfer cells) measures the attack's failure, not the detector's robustness."""
    for c, r in cells:
        if attack_gave_up(c, r):
            u = r.metrics["unchanged"]
            hint = (f" (CW-L2 returns an image unperturbed when no iterate reached the logit margin "
                    f"kappa={c.attack.params.confidence:g})" if c.attack.attack == "cw_l2" else "")
            yield Flag("attack-left-images-unchanged", c.target.name,
                       f"{c.attack.label} ({c.attack.backend}) returned {u['k']} of the {u['n']} attacked fakes "
                       f"it detected unperturbed{hint}; its {_acc(r)['value']:.1%} detected measures the attack "
                       "giving up, not robustness")


# A class recall below this on unperturbed images marks a classifier that mostly answers one class.
MIN_RECALL = 0.5


def degenerate_classifier(clean: dict[str, CellResult | None]) -> Iterator[Flag]:
    """A model (or defended variant) that calls most images of one class the other class on clean data:
    its accuracy on attacked fakes says little (a model that answers 'fake' to everything is 'robust')."""
    for name, r in clean.items():
        if r is None or "fake_recall" not in r.metrics:
            continue
        fake, real = r.metrics["fake_recall"]["value"], r.metrics["real_recall"]["value"]
        if min(fake, real) < MIN_RECALL:
            leans = "fake" if fake > real else "real"
            yield Flag("degenerate-classifier", name,
                       f"on unperturbed test images it leans to '{leans}': fake recall {fake:.1%}, real recall "
                       f"{real:.1%} (below {MIN_RECALL:.0%}); its robust accuracy on fakes is not evidence of "
                       f"robustness")


CHECKS = (transfer_beats_white_box, not_monotone_in_budget, single_step_beats_iterative, defense_only_non_adaptive,
          attack_left_images_unchanged)
from bench.report.breakdown import near_chance_on_subset  # noqa: E402 - issue 14, per-subset flag

CLEAN_CHECKS = (degenerate_classifier, near_chance_on_subset)


def run_checks(
    cells: list[tuple[AttackCell, CellResult | None]], clean: dict[str, CellResult | None] | None = None
) -> list[Flag]:
    """Every flag: the attack-cell checks on `cells`, the clean-data checks on `clean` (per variant name)."""
    flags = [flag for check in CHECKS for flag in check(cells)]
    return flags + [flag for check in CLEAN_CHECKS for flag in check(clean or {})]
