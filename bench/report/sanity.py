"""Automatic sanity checks for gradient masking and broken evaluations (in the spirit of AutoAttack's flags).

Each check looks at stored results only (rows of the attack frame of `bench.results.query`, as dicts) and,
when it fires, names the model, the attack and the numbers, and links its own doc in `docs/checks/`.
Checks read the attacks' declarations (family, norm, budget, margin parameter, control kind) and the check
attacks' keys, never attack names. A flag is a reason to look, not a verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.attacks.registry import STORAGE_ONLY, control_size, declared, margin_at
from bench.report.format import num
from bench.results.records import GradNormMetrics
from bench.suite.controls import CONVERGENCE_CHECK, CONVERGENCE_STRONGER_CHECK, UNBOUNDED_CHECK

Row = dict[str, Any]  # one row of the attack frame

# A difference counts only when the 95% intervals do not overlap, or by this margin when n is large.
MARGIN = 0.05


@dataclass(frozen=True)
class Flag:
    check: str
    model: str
    message: str
    severity: float = 0.0  # how far past its threshold it fired (a share of images): the worst instance leads


    @property
    def doc(self) -> str:
        return f"docs/checks/{self.check}.md"


def _acc(r: Row) -> dict:
    return r["metrics"]["accuracy"]


def _clearly_higher(a: dict, b: dict) -> bool:
    """a's accuracy is above b's by more than MARGIN and their 95% intervals do not overlap."""
    return a["value"] - b["value"] > MARGIN and a["lo"] > b["hi"]


def transfer_beats_white_box(cells: list[Row]) -> Iterator[Flag]:
    """Transfer examples from another model fool the target more than examples made on the target itself."""
    white = {(r["target"], r["attack_key"], r["label"]): r for r in cells
             if r["metrics"] and r["threat"] == "white-box" and not r["adaptive"]}
    for r in cells:
        if not r["metrics"] or r["threat"] != "transfer":
            continue
        w = white.get((r["target"], r["attack_key"], r["label"]))
        if w and _clearly_higher(_acc(w), _acc(r)):
            yield Flag("transfer-beats-white-box", r["target"],
                       f"{r['label']}: white-box accuracy {_acc(w)['value']:.1%} > transfer from "
                       f"{r['source']} {_acc(r)['value']:.1%}", _acc(w)["value"] - _acc(r)["value"])


def not_monotone_in_budget(cells: list[Row]) -> Iterator[Flag]:
    """A larger perturbation budget leaves clearly more fakes detected than a smaller one."""
    groups: dict[tuple, list[tuple[float, dict]]] = {}
    for r in cells:
        if not r["metrics"] or r["budget"] is None or tuple(r["varying"]) != (r["budget"],):
            continue
        groups.setdefault((r["attack_key"], r["source"], r["target"]), []).append((r["budget_value"], _acc(r)))
    for (key, src, dst), pts in groups.items():
        pts.sort(key=lambda t: t[0])
        budget = next(r["budget"] for r in cells if r["attack_key"] == key)
        for (e1, a1), (e2, a2) in zip(pts, pts[1:], strict=False):
            if _clearly_higher(a2, a1):
                yield Flag("not-monotone-in-budget", dst,
                           f"{key} from {src}: {budget}={e2} leaves {a2['value']:.1%} detected, {budget}={e1} only "
                           f"{a1['value']:.1%}", a2["value"] - a1["value"])


def single_step_beats_iterative(cells: list[Row]) -> Iterator[Flag]:
    """A single-step attack (FGSM) fools a model more than an iterative one with a larger or equal budget in
    the same norm, or than a minimum-norm attack (PGD, CW). Storage-unaware attacks (the paper's setting) are not
    held to it: storage undoing their examples is their columns' finding, not a broken attack."""
    white = [r for r in cells if r["metrics"] and r["threat"] == "white-box" and _storage_aware(r)]
    single = [r for r in white if r["family"] == "single-step"]
    stronger = [r for r in white if r["family"] in ("iterative", "minimum-norm")]
    for rf in single:
        for ri in stronger:
            if ri["target"] != rf["target"] or ri["source"] != rf["source"]:
                continue
            if ri["family"] == "iterative" and not (ri["norm"] == rf["norm"]
                                                    and ri["budget_value"] >= rf["budget_value"]):
                continue
            if _clearly_higher(_acc(ri), _acc(rf)):
                yield Flag("single-step-beats-iterative", rf["target"],
                           f"{ri['label']} leaves {_acc(ri)['value']:.1%} detected, "
                           f"{rf['label']} only {_acc(rf)['value']:.1%}", _acc(ri)["value"] - _acc(rf)["value"])


def defense_only_non_adaptive(cells: list[Row]) -> Iterator[Flag]:
    """A defended model was not attacked through its defense at least as strongly as through its base: no
    adaptive attack leaves at most as many fakes detected as the strongest non-adaptive one (white-box, made on
    the undefended base and passed through the defense). Without any adaptive attack it fires when the
    defended model looks robust (more than half the fakes detected)."""
    by_target: dict[str, tuple[list[Row], list[Row]]] = {}
    for r in cells:
        if r["metrics"] and r["defended"] and r["threat"] == "white-box":
            by_target.setdefault(r["target"], ([], []))[0 if r["adaptive"] else 1].append(r)
    for v, (adaptive, plain) in by_target.items():
        if not plain:
            continue
        strongest = min(plain, key=lambda r: _acc(r)["value"])
        s = _acc(strongest)["value"]
        if not adaptive:
            if s > 0.5:
                yield Flag("defense-only-non-adaptive", v,
                           f"{strongest['label']}: {s:.1%} detected, but no attack went through the defense "
                           "itself; set `adaptive: true` on the defense to add a BPDA attack", s)
            continue
        best = min(adaptive, key=lambda r: _acc(r)["value"])
        if _acc(best)["value"] > s:
            yield Flag("defense-only-non-adaptive", v,
                       f"the strongest adaptive attack ({best['label']}) leaves {_acc(best)['value']:.1%} detected, "
                       f"the strongest non-adaptive one ({strongest['label']}) only {s:.1%}: no attack through "
                       "the defense is as strong as attacking around it", _acc(best)["value"] - s)


# An adaptive attack counts as weaker than its non-adaptive twin when it leaves this much more detected.
ADAPTIVE_MARGIN = 0.05


def adaptive_weaker_than_non_adaptive(cells: list[Row]) -> Iterator[Flag]:
    """An attack made through a defended variant (adaptive) leaves clearly more fakes detected than the same
    attack point made on the undefended base and passed through the defense: the adaptive gradient is broken."""
    plain = {(r["target"], r["label"]): r for r in cells
             if r["metrics"] and r["defended"] and r["threat"] == "white-box" and not r["adaptive"]}
    for r in cells:
        if not r["metrics"] or not r["adaptive"]:
            continue
        p = plain.get((r["target"], r["label"]))
        if p and _acc(r)["value"] - _acc(p)["value"] > ADAPTIVE_MARGIN:
            yield Flag("adaptive-weaker-than-non-adaptive", r["target"],
                       f"{r['label']} through the defense leaves {_acc(r)['value']:.1%} detected, made on "
                       f"{p['source']} and passed through it only {_acc(p)['value']:.1%}",
                       _acc(r)["value"] - _acc(p)["value"])


# An attack that returns at least this share of the fakes the model detects unperturbed (to 8-bit precision)
# found nothing it accepts on most of them.
MAX_UNCHANGED = 0.5


def attack_gave_up(r: Row) -> bool:
    """A white-box cell (made on the model it scores) whose attack returned at least MAX_UNCHANGED of the
    fakes the model detects unperturbed. Its examples are mostly the originals, for every cell made from them."""
    if not r["metrics"] or r["threat"] != "white-box" or r["source"] != r["target"]:
        return False
    u = (r["craft_metrics"] or {}).get("unchanged")  # among the fakes the model detects, before storage
    return u is not None and u["value"] >= MAX_UNCHANGED


def attack_left_images_unchanged(cells: list[Row]) -> Iterator[Flag]:
    """A white-box attack returned most of the fakes the model detects exactly as they were: it gave up on
    them (a CW-L2 confidence kappa the model cannot reach, a budget below one 8-bit level), so the accuracy
    under it (and under its transfer cells) measures the attack's failure, not the detector's robustness."""
    for r in cells:
        if attack_gave_up(r):
            u = r["craft_metrics"]["unchanged"]
            margin = margin_at(r["attack"], r["params"])
            hint = (f" ({margin[0]} returns an image unperturbed when no iterate reached the logit margin "
                    f"kappa={margin[1]:g})" if margin else "")
            yield Flag("attack-left-images-unchanged", r["target"],
                       f"{r['label']} ({r['backend']}) returned {u['k']} of the {u['n']} attacked fakes "
                       f"it detected unperturbed{hint}; its {_acc(r)['value']:.1%} detected measures the attack "
                       "giving up, not robustness", u["value"])


# A class recall below this on unperturbed images marks a classifier that mostly answers one class.
MIN_RECALL = 0.5


def degenerate_classifier(clean: dict[str, dict | None]) -> Iterator[Flag]:
    """A model (or defended variant) that calls most images of one class the other class on clean data:
    its accuracy on attacked fakes says little (a model that answers 'fake' to everything is 'robust')."""
    for name, m in clean.items():
        if m is None or "fake_recall" not in m:
            continue
        fake, real = m["fake_recall"]["value"], m["real_recall"]["value"]
        if min(fake, real) < MIN_RECALL:
            leans = "fake" if fake > real else "real"
            yield Flag("degenerate-classifier", name,
                       f"on unperturbed test images it leans to '{leans}': fake recall {fake:.1%}, real recall "
                       f"{real:.1%} (below {MIN_RECALL:.0%}); its robust accuracy on fakes is not evidence of "
                       f"robustness", MIN_RECALL - min(fake, real))


def auroc_text(m: dict | None) -> str:
    """`0.912 [0.871, 0.953]`, or just the value when the metrics carry no interval."""
    if not m or m.get("auroc") is None:
        return "n/a"
    if m.get("auroc_lo") is None:
        return num(m["auroc"])
    return f"{num(m['auroc'])} [{num(m['auroc_lo'])}, {num(m['auroc_hi'])}]"


def near_chance(m: dict) -> str | None:
    """Why a detector is near chance on these metrics (None when it is not): a class recall below MIN_RECALL
    (it calls most images of one class the other class), or its AUROC's 95% interval reaches 0.5."""
    fake, real = m["fake_recall"]["value"], m["real_recall"]["value"]
    if min(fake, real) < MIN_RECALL:
        return f"leans to '{'fake' if fake > real else 'real'}' (fake recall {fake:.1%}, real recall {real:.1%})"
    if m.get("auroc_lo") is not None and m["auroc_lo"] <= 0.5:
        return f"AUROC {auroc_text(m)} does not exclude chance (0.5)"
    return None


def near_chance_on_subset(clean: dict[str, dict | None]) -> Iterator[Flag]:
    """A detector near chance on one subset of the data (see `near_chance`)."""
    for name, c in clean.items():
        for subset, m in ((c.get("by_subset") or {}) if c else {}).items():
            why = near_chance(m)
            if why:
                yield Flag("near-chance-on-subset", name, f"subset {subset}: {why}; its accuracy under attack there "
                           "says little")


# ------------------------------------------------------------------ checks on controls and check attacks
# An unbounded attack should fool every model: it fires above this share of its attacked fakes still detected.
MAX_UNBOUNDED_DETECTED = 0.05
# A control counts as strong as an attack when it leaves at most this much more detected than the attack.
CONTROL_TOLERANCE = 0.02
# More steps may find this much more (as a share of the attacked fakes) before the check fires.
MAX_CONVERGENCE_GAIN = 0.05
# Input gradients count as masked when they are exactly zero on more than this share of the images.
MAX_ZERO_GRADIENTS = 0.5


def _storage_aware(r: Row) -> bool:
    """Whether the cell's attack was made through the storage (rows stored before the flag existed were)."""
    return r.get("storage_aware", True) is not False


def _role(r: Row) -> str:
    return r.get("role") or "attack"


def unbounded_attack_fails(cells: list[Row]) -> Iterator[Flag]:
    """The run's unbounded check attack (an L-inf budget of the whole box, or a huge c) leaves more than
    MAX_UNBOUNDED_DETECTED of the fakes it attacked detected: the attack, or its gradient, is broken."""
    for r in cells:
        if _role(r) != "check" or r["attack_key"] != UNBOUNDED_CHECK or not r["metrics"]:
            continue
        a = _acc(r)
        if a["value"] > MAX_UNBOUNDED_DETECTED:
            yield Flag("unbounded-attack-fails", r["target"],
                       f"{r['title']} ({r['backend']}, {', '.join(f'{k}={v}' for k, v in r['params'].items())}) "
                       f"leaves {a['k']} of {a['n']} fakes detected ({a['value']:.1%} > "
                       f"{MAX_UNBOUNDED_DETECTED:.0%}); an unbounded attack should fool every model", a["value"])


def _matching_controls(r: Row, controls: list[Row]) -> list[Row]:
    """The controls scored on r's target that match r's budget: storage always; noise at r's L-inf budget;
    L2 noise at r's L2 budget; L2 noise sized by r's own examples (a minimum-norm attack)."""
    out = []
    for c in controls:
        if c["target"] != r["target"] or not c["metrics"]:
            continue
        if declared(c["attack"], "control") == STORAGE_ONLY:
            out.append(c)
        elif c["budget"] is not None and r["budget"] is not None and r["norm"] == c["norm"] \
                and abs(c["budget_value"] - r["budget_value"]) < 1e-12:
            out.append(c)
        elif c["params"].get("of"):
            if c["params"]["of"] == r["craft_key"]:
                out.append(c)
        elif (size := control_size(c["attack"], c["params"])) is not None and c["norm"] == r["norm"] \
                and r["budget"] is not None and abs(size - r["budget_value"]) < 1e-12:
            out.append(c)  # a noise control whose size is given where its budget is not declared (L2 noise)
    return out


def noise_as_strong_as_attack(cells: list[Row]) -> Iterator[Flag]:
    """A control (storage only, random noise at the attack's budget) leaves at most as many fakes detected as
    the attack (within CONTROL_TOLERANCE): the attack is broken, or its budget is meaningless. Storage-unaware
    attacks (the paper's setting) are not held to it: storage undoing them is their columns' finding."""
    controls = [r for r in cells if _role(r) == "control"]
    for r in cells:
        if (_role(r) != "attack" or not r["metrics"] or r["threat"] != "white-box" or r["adaptive"]
                or not _storage_aware(r)):
            continue
        for c in _matching_controls(r, controls):
            if _acc(c)["value"] <= _acc(r)["value"] + CONTROL_TOLERANCE:
                yield Flag("noise-as-strong-as-attack", r["target"],
                           f"{c['label']} leaves {_acc(c)['value']:.1%} detected, {r['label']} "
                           f"{_acc(r)['value']:.1%}: the attack does no better than its control",
                           _acc(c)["value"] - _acc(r)["value"])
                break


def not_converged(cells: list[Row]) -> Iterator[Flag]:
    """A rerun with more iterations leaves more than MAX_CONVERGENCE_GAIN fewer fakes detected than the run it
    checks, on the same attacked fakes, after storage: the attack had not converged. Two kinds of check cells:
    the reruns of the suite's own attacks (`checks.longer_runs`: each cell carries the suite attack's accuracy on
    its images, `reference_accuracy`) and the optional extra pair (`checks.convergence`)."""
    suite = {(r["craft_key"], r["target"]): r for r in cells if _role(r) == "attack"}
    for r in cells:
        if _role(r) != "check" or not r["metrics"] or "reference_accuracy" not in r["metrics"]:
            continue
        a, ref = _acc(r), r["metrics"]["reference_accuracy"]
        if ref["value"] - a["value"] > MAX_CONVERGENCE_GAIN:
            s = suite.get((r.get("reference"), r["target"]))
            more = ", ".join(f"{k}={v} instead of {s['params'][k]}" for k, v in r["params"].items()
                             if s and s["params"].get(k) != v)
            yield Flag("not-converged", r["target"],
                       f"{s['label'] if s else r['label']} ({r['backend']}) with {more or 'more iterations'} leaves "
                       f"{a['value']:.1%} of the first {a['n']} attacked fakes detected, as run by the suite "
                       f"{ref['value']:.1%} of the same fakes: it had not converged")
    base = {r["target"]: r for r in cells
            if _role(r) == "check" and r["attack_key"] == CONVERGENCE_CHECK and r["metrics"]}
    for r in cells:
        if _role(r) != "check" or r["attack_key"] != CONVERGENCE_STRONGER_CHECK or not r["metrics"]:
            continue
        b = base.get(r["target"])
        steps = declared(r["attack"], "iterations")
        if b and _acc(b)["value"] - _acc(r)["value"] > MAX_CONVERGENCE_GAIN:
            yield Flag("not-converged", r["target"],
                       f"{r['title']} with {steps}={r['params'].get(steps)} leaves {_acc(r)['value']:.1%} detected, "
                       f"with {steps}={b['params'].get(steps)} {_acc(b)['value']:.1%} (n={_acc(r)['n']})",
                       _acc(b)["value"] - _acc(r)["value"])


def gradient_masked(gradnorms: dict[str, dict | None]) -> Iterator[Flag]:
    """Input gradients through a variant (its defense's forward included) are non-finite on any image, or
    exactly zero on more than MAX_ZERO_GRADIENTS of them: gradient attacks get no signal (masking)."""
    for name, stored in gradnorms.items():
        g = GradNormMetrics.of(stored)
        if g is None or g.zero is None:  # older rows did not count zero gradients
            continue
        n, zero, bad = g.n, g.zero, g.non_finite
        if bad or (n and zero / n > MAX_ZERO_GRADIENTS):
            yield Flag("gradient-masked", name,
                       f"input gradients are zero on {zero} and non-finite on {bad} of {n} test images",
                       (zero + bad) / n if n else 1.0)


# ------------------------------------------------------------------ randomized smoothing's certificates
Certificates = dict[str, dict[str, tuple[str, float | None]]]  # variant -> image id -> (class, radius or None)


def attack_beats_certificate(cells: list[Row], certificates: Certificates) -> Iterator[Flag]:
    """An attack's stored example lies closer (L2, from the stored clean fake: the certified input) than the radius
    CERTIFY certified for that fake, and PREDICT votes it another class than the certified one (an abstention
    contradicts nothing). Below its radius the smoothed detector cannot change its answer, except with probability
    at most alpha per image: a bug in the attack's norm accounting, the certificate or the storage. Every cell
    scored on a smoothed variant counts, whatever its role (a control's random noise is bound by it too)."""
    for r in cells:
        m = r["metrics"]
        sm = m.get("smoothed") if isinstance(m, dict) else None
        certs = certificates.get(r["target"])
        if not sm or not certs:
            continue
        beaten = []
        for i, d, vote in zip(sm["ids"], sm["l2_from_stored"], sm["vote"], strict=True):
            cls, radius = certs.get(i, ("abstain", None))
            if radius is not None and vote not in ("abstain", cls) and d < radius:
                beaten.append((i, d, radius, vote))
        if beaten:
            i, d, radius, vote = min(beaten, key=lambda t: t[1] / t[2])
            yield Flag("attack-beats-certificate", r["target"],
                       f"{r['label']} ({r.get('role') or 'attack'}, from {r['source']}): {len(beaten)} of "
                       f"{len(sm['ids'])} stored examples voted otherwise than certified at an L2 below the "
                       f"certified radius (e.g. {i}: voted {vote} at L2 {d:.4f} < radius {radius:.4f})")


# ------------------------------------------------------------------ checks on the adaptive DIP cells
# The adaptive attacks through DIP are section cells (`bench.dip.adaptive`), not attack-frame rows: these read the
# sections frame's rows (kind, key, payload, metrics) and raise the same flags, with the same docs.
DIP_ADAPTIVE = "dip-adaptive"


def _dip_adaptive(sections: list[Row], role: str | None = "attack") -> list[Row]:
    """The adaptive DIP cells with results (of one role: the attack as given, or its convergence twin)."""
    return [r for r in sections if r["kind"] == DIP_ADAPTIVE and isinstance(r.get("metrics"), dict)
            and (role is None or (r["payload"].get("role") or "attack") == role)]


def _dip_variant(r: Row) -> str:
    return f"{r['payload']['classifier']} + DIP"


def _success_on(m: dict, ids: set[str], threshold: str) -> tuple[int, int]:
    """(images not detected at `threshold`, images) among `ids` of an adaptive DIP cell's per-image scores."""
    t = float(threshold)
    scores = [p for i, p in zip(m["image_ids"], m["p_real_defended"], strict=True) if i in ids]
    return sum(p >= t for p in scores), len(scores)


def dip_adaptive_not_converged(sections: list[Row]) -> Iterator[Flag]:
    """An adaptive attack through DIP whose convergence twin (the same attack with more steps, on the same images)
    turns more than MAX_CONVERGENCE_GAIN more of them into 'real' through DIP, at any threshold."""
    regular = {r["key"]: r for r in _dip_adaptive(sections)}
    for twin in _dip_adaptive(sections, "convergence"):
        r = regular.get(twin["payload"].get("of"))
        if r is None:
            continue
        m, mt = r["metrics"], twin["metrics"]
        ids = set(m["image_ids"]) & set(mt["image_ids"])
        for t in mt["by_threshold"]:
            k, n = _success_on(m, ids, t)
            kt, nt = _success_on(mt, ids, t)
            if n and nt and kt / nt - k / n > MAX_CONVERGENCE_GAIN:
                yield Flag("not-converged", _dip_variant(r),
                           f"adaptive {r['payload']['label']} through DIP turns {k} of {n} attacked fakes real at "
                           f"threshold {t}, with {twin['payload'].get('steps_factor', 2)}x the steps {kt} of {nt} "
                           f"({kt / nt - k / n:+.1%})")
                break


def dip_adaptive_weaker(sections: list[Row]) -> Iterator[Flag]:
    """An adaptive attack through DIP whose examples that fool the classifier alone DIP recovers clearly more often
    (by more than ADAPTIVE_MARGIN, at any threshold) than the non-adaptive ones (the DIP cell's perturbed
    fake-wrong images): attacking through DIP did worse than ignoring it."""
    dip = next((r["metrics"] for r in sections if r["kind"] == "dip" and isinstance(r.get("metrics"), dict)), None)
    if dip is None:
        return
    for r in _dip_adaptive(sections):
        for t, o in r["metrics"]["by_threshold"].items():
            plain = dip["headline"].get(t, {}).get("fake_wrong")
            ad = o["recovered"]
            if not plain or not plain["n"] or not ad["n"]:
                continue
            if ad["value"] - plain["value"] > ADAPTIVE_MARGIN:
                yield Flag("adaptive-weaker-than-non-adaptive", _dip_variant(r),
                           f"DIP recovers {ad['value']:.1%} (n={ad['n']}) of the fakes that adaptive "
                           f"{r['payload']['label']} made to fool {r['payload']['classifier']} alone, only "
                           f"{plain['value']:.1%} (n={plain['n']}) of the non-adaptive ones (threshold {t})")
                break


def dip_adaptive_left_unchanged(sections: list[Row]) -> Iterator[Flag]:
    """An adaptive attack through DIP returned at least MAX_UNCHANGED of its attacked fakes (all detected by the
    classifier) unperturbed, to 8-bit precision."""
    for r in _dip_adaptive(sections):
        u = r["metrics"].get("unchanged")
        if u and u["n"] and u["value"] >= MAX_UNCHANGED:
            margin = margin_at(r["payload"]["attack"], r["metrics"]["params"])
            hint = (f" ({margin[0]} returns an image unperturbed when no iterate reached the logit margin "
                    f"kappa={margin[1]:g} through the DIP sample it drew)" if margin else "")
            yield Flag("attack-left-images-unchanged", _dip_variant(r),
                       f"adaptive {r['payload']['label']} through DIP returned {u['k']} of the {u['n']} attacked "
                       f"fakes unperturbed{hint}; DIP's accuracy under it measures the attack giving up")


DIP_CHECKS = (dip_adaptive_not_converged, dip_adaptive_weaker, dip_adaptive_left_unchanged)  # read the sections


CHECKS = (transfer_beats_white_box, not_monotone_in_budget, single_step_beats_iterative, defense_only_non_adaptive,
          attack_left_images_unchanged, adaptive_weaker_than_non_adaptive)
RUN_CHECKS = (unbounded_attack_fails, noise_as_strong_as_attack, not_converged)  # read controls and check cells
CLEAN_CHECKS = (degenerate_classifier, near_chance_on_subset)
GRADIENT_CHECKS = (gradient_masked,)
CERTIFICATE_CHECKS = (attack_beats_certificate,)
ALL_CHECKS = CHECKS + RUN_CHECKS + CLEAN_CHECKS + GRADIENT_CHECKS + CERTIFICATE_CHECKS


def run_checks(cells: list[Row], clean: dict[str, dict | None] | None = None,
               gradnorms: dict[str, dict | None] | None = None,
               certificates: Certificates | None = None, sections: list[Row] | None = None) -> list[Flag]:
    """Every flag: the attack-cell checks on the suite's attacks among `cells` (attack-frame rows), the run
    checks on its controls and check attacks, the adaptive DIP checks on `sections` (sections-frame rows), the
    clean-data checks on `clean` (clean metrics per variant name), the gradient checks on `gradnorms`
    (gradient-norm metrics per variant name), the certificate checks on every cell against `certificates`
    (`bench.smoothing.report.certificates`)."""
    attacks = [r for r in cells if _role(r) == "attack"]
    flags = [flag for check in CHECKS for flag in check(attacks)]
    flags += [flag for check in RUN_CHECKS for flag in check(cells)]
    flags += [flag for check in DIP_CHECKS for flag in check(sections or [])]
    flags += [flag for check in CLEAN_CHECKS for flag in check(clean or {})]
    flags += [flag for check in GRADIENT_CHECKS for flag in check(gradnorms or {})]
    return flags + [flag for check in CERTIFICATE_CHECKS for flag in check(cells, certificates or {})]
