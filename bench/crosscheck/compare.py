"""Running one attack from several implementations on the same detector, images and settings, and comparing them.

The first implementation is the *subject* (usually the one being checked: native, or a user's
attack); every other one is a *reference*. The report gives, side by side:

- agreement: success agreement per image for every pair; for deterministic attacks (FGSM, PGD without
  random start) also the max abs difference between the adversarial images;
- strength: success rate (the detector's prediction on the returned image differs from the label),
  mean and median L2 and L-inf of the successful perturbations, and for each pair the share of the
  images both broke where each found the smaller L2 perturbation;
- cost: seconds per image and forward / backward passes per image through the network (counted);
- grades, as AttackBench defines them (`bench.crosscheck.grade`): per implementation its security-evaluation
  curve (robust accuracy against the budget; a budgeted attack is rerun at each of `budgets`), its optimality
  relative to the best curve over all implementations run, and its passes and time over all its runs;
- a verdict per metric, subject against each reference, with the tolerance printed next to it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from bench.attacks.counting import PassCount, count_passes
from bench.attacks.params import AttackParams
from bench.attacks.registry import get_attack, run_attack, warm_backend
from bench.attacks.user import is_user_spec, load_user_attack, validate_adversarial
from bench.crosscheck.grade import Grade, curve_budgets, distances, optimality, robust_accuracy
from bench.crosscheck.report import render_markdown, render_text
from bench.crosscheck.tolerances import Tolerances
from bench.errors import BenchError, validation_problems
from bench.models.detector import Detector
from bench.models.diagnostics import REACH_STEP, REACH_STEPS, reachable_margin

DEFAULT_IMPLEMENTATIONS = ("native", "art", "foolbox")
TIE_L2 = 1e-6  # two L2 norms closer than this are a tie

@dataclass
class ImplResult:
    """One implementation's run."""

    name: str
    x_adv: torch.Tensor | None = None
    seconds: float = 0.0
    passes: PassCount = field(default_factory=PassCount)
    error: str | None = None
    contract_error: bool = False
    success: torch.Tensor | None = None
    l2: torch.Tensor | None = None
    linf: torch.Tensor | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.x_adv is not None

    def summary(self, n: int) -> dict[str, float]:
        """Strength and cost metrics (NaN where undefined)."""
        if not self.ok:
            return {}
        s = self.success
        l2, linf = self.l2[s], self.linf[s]
        fwd, bwd = self.passes.per_image(n)
        return {
            "success_rate": float(s.float().mean()) if n else math.nan,
            "mean_l2": float(l2.mean()) if len(l2) else math.nan,
            "median_l2": float(l2.median()) if len(l2) else math.nan,
            "mean_linf": float(linf.mean()) if len(linf) else math.nan,
            "median_linf": float(linf.median()) if len(linf) else math.nan,
            "seconds_per_image": self.seconds / n if n else math.nan,
            "forward_per_image": fwd,
            "backward_per_image": bwd,
        }


@dataclass
class PairStats:
    a: str
    b: str
    success_agreement: float
    max_abs_diff: float
    n_both: int
    a_smaller: float
    b_smaller: float
    ties: float


@dataclass
class Verdict:
    metric: str
    subject: str
    reference: str
    value: float | None
    tolerance: str
    ok: bool | None  # None: not applicable (e.g. no image broken by both)


@dataclass
class CrosscheckReport:
    attack: str
    params: dict[str, Any]
    n: int
    clean_correct: int
    device: str
    exact: bool
    tolerances: Tolerances
    results: list[ImplResult]
    pairs: list[PairStats]
    verdicts: list[Verdict]
    notes: list[str]
    reachable_margin: list[float] | None = None  # CW-L2: per image, the margin-reachability probe's result
    grades: list[Grade] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)  # where the curves are tabulated
    norm: str = "l2"

    @property
    def subject(self) -> str:
        return self.results[0].name

    @property
    def verdict_ok(self) -> bool:
        return all(r.ok for r in self.results) and all(v.ok is not False for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        if any(r.contract_error for r in self.results):
            return 2
        return 0 if self.verdict_ok else 1

    # ---------------------------------------------------------- rendering (bench.crosscheck.report)
    def as_data(self) -> dict[str, Any]:
        """Everything the report shows, as plain data (what the store keeps; the renderers read it)."""
        return {
            "attack": self.attack, "params": self.params, "n": self.n, "clean_correct": self.clean_correct,
            "device": self.device, "exact": self.exact, "ok": self.verdict_ok, "notes": list(self.notes),
            "tolerances": {k: {"value": getattr(self.tolerances, k), "meaning": d}
                           for k, d in self.tolerances.describe().items()},
            "results": [{"name": r.name, "ok": r.ok, "error": r.error, "summary": r.summary(self.n),
                         "forward_total": r.passes.forward} for r in self.results],
            "pairs": [asdict(p) for p in self.pairs],
            "verdicts": [asdict(v) for v in self.verdicts],
            "reachable_margin": self.reachable_margin,
            "norm": self.norm,
            "budgets": list(self.budgets),
            "grades": [asdict(g) for g in self.grades],
        }

    def to_text(self) -> str:
        return render_text(self.as_data())

    def to_markdown(self) -> str:
        return render_markdown(self.as_data())


# ---------------------------------------------------------------- running
def is_exact(attack: str, params: AttackParams) -> bool:
    """Whether implementations must agree pixel by pixel: the attack declares itself deterministic (and
    this point has no random start)."""
    return get_attack(attack).deterministic_for(params)


def validate_params(attack: str, params: AttackParams | dict[str, Any] | None, where: str = "--param") -> AttackParams:
    """The attack's parameter model from a dict (or as given), with errors naming the field."""
    spec = get_attack(attack, where="--attack")
    if isinstance(params, spec.params):
        return params
    if isinstance(params, AttackParams):
        params = params.model_dump()
    try:
        return spec.params(**(params or {}))
    except ValidationError as exc:
        loc, msg = validation_problems(exc)[0]
        raise BenchError(f"{where} {loc}".strip(), f"{msg} (attack {attack})") from None


def _sync(detector: Detector) -> None:
    if detector.device.type == "cuda":
        torch.cuda.synchronize(detector.device)


def _run_one(
    name: str, attack: str, detector: Detector, x: torch.Tensor, y: torch.Tensor, params: AttackParams, seed: int
) -> ImplResult:
    res = ImplResult(name)
    spec = get_attack(attack)
    try:
        if name in spec.backends:
            fn = lambda d, xx, yy, p: validate_adversarial(run_attack(attack, name, d, xx, yy, p), x, where=name)
        elif is_user_spec(name):
            fn = load_user_attack(name)
        else:
            raise BenchError(
                name,
                f"unknown implementation of {attack}; use one of {', '.join(sorted(spec.backends))} "
                "or a user attack 'module.path:Name' / 'path/to/file.py:Name'",
            )
        warm_backend(attack, name)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        detector.eval()
        with count_passes(detector) as passes:
            _sync(detector)
            t0 = time.perf_counter()
            x_adv = fn(detector, x, y, params)
            _sync(detector)
            res.seconds = time.perf_counter() - t0
        res.passes = passes
        res.x_adv = x_adv
    except BenchError as exc:
        res.error, res.contract_error = str(exc), True
    except Exception as exc:  # noqa: BLE001 - a failing implementation is reported, the others still run
        res.error = f"{name} raised {type(exc).__name__}: {exc}"
    return res


@torch.no_grad()
def _predict(detector: Detector, x: torch.Tensor) -> torch.Tensor:
    return detector.predict_proba(x).argmax(dim=1)


def _pair(a: ImplResult, b: ImplResult) -> PairStats:
    agree = float((a.success == b.success).float().mean()) if len(a.success) else math.nan
    diff = float((a.x_adv - b.x_adv).abs().max()) if a.x_adv.numel() else 0.0
    both = a.success & b.success
    k = int(both.sum())
    if k:
        la, lb = a.l2[both], b.l2[both]
        tie = (la - lb).abs() <= TIE_L2
        a_sm = float(((la < lb) & ~tie).sum()) / k
        b_sm = float(((lb < la) & ~tie).sum()) / k
        ties = float(tie.sum()) / k
    else:
        a_sm = b_sm = ties = math.nan
    return PairStats(a.name, b.name, agree, diff, k, a_sm, b_sm, ties)


def _verdicts(
    attack: str, exact: bool, subject: ImplResult, refs: list[ImplResult], n: int, tol: Tolerances
) -> list[Verdict]:
    out: list[Verdict] = []
    if not subject.ok:
        return out
    for r in refs:
        if not r.ok:
            continue
        if exact:
            diff = float((subject.x_adv - r.x_adv).abs().max()) if n else 0.0
            agree = float((subject.success == r.success).float().mean()) if n else 1.0
            out.append(
                Verdict(
                    "max_abs_diff", subject.name, r.name, diff, f"<= {tol.max_abs_diff:g}", diff <= tol.max_abs_diff
                )
            )
            out.append(
                Verdict(
                    "success_agreement",
                    subject.name,
                    r.name,
                    agree,
                    f">= {tol.success_agreement:g}",
                    agree >= tol.success_agreement,
                )
            )
            continue
        gap = float(subject.success.float().mean() - r.success.float().mean()) if n else 0.0
        out.append(
            Verdict(
                "success_rate_gap",
                subject.name,
                r.name,
                gap,
                f">= -{tol.success_rate_slack:g}",
                gap >= -tol.success_rate_slack - 1e-12,
            )
        )
        if get_attack(attack).family == "minimum-norm":
            both = subject.success & r.success
            if int(both.sum()) == 0:
                out.append(Verdict("median_l2_ratio", subject.name, r.name, None, f"<= {tol.median_l2_ratio:g}", None))
            else:
                ms, mr = float(subject.l2[both].median()), float(r.l2[both].median())
                ratio = ms / mr if mr > 0 else (1.0 if ms == 0 else math.inf)
                out.append(
                    Verdict(
                        "median_l2_ratio",
                        subject.name,
                        r.name,
                        ratio,
                        f"<= {tol.median_l2_ratio:g}",
                        ratio <= tol.median_l2_ratio,
                    )
                )
    return out


def crosscheck(
    detector: Detector,
    x: torch.Tensor,
    y: torch.Tensor,
    attack_name: str,
    params: AttackParams | dict[str, Any] | None,
    implementations: list[str],
    tolerances: Tolerances | None = None,
    seed: int = 0,
    budgets: list[float] | None = None,
) -> CrosscheckReport:
    """Run `attack_name` from each implementation on the same inputs and compare (first = subject).

    `budgets`: where the security-evaluation curves are tabulated; a budgeted attack is also run at each
    of them (for its curve and optimality)."""
    tol = tolerances or Tolerances()
    if len(implementations) < 2:
        raise BenchError("--impl", "name at least two implementations to compare")
    dupes = sorted({i for i in implementations if implementations.count(i) > 1})
    if dupes:
        raise BenchError("--impl", f"implementation listed twice: {', '.join(dupes)}")
    p = validate_params(attack_name, params)
    x = x.detach().to("cpu", torch.float32)
    y = y.detach().to("cpu", torch.int64)
    n = len(x)
    detector.eval()
    exact = is_exact(attack_name, p)
    notes: list[str] = []
    results = [_run_one(name, attack_name, detector, x, y, p, seed) for name in implementations]
    nonzero_input = x.flatten(1).abs().amax(dim=1) > 0
    for r in results:
        if not r.ok:
            continue
        zero = (r.x_adv.flatten(1).abs().amax(dim=1) == 0) & nonzero_input
        if bool(zero.any()):
            r.x_adv = torch.where(zero.view(-1, 1, 1, 1), x, r.x_adv)
            notes.append(
                f"{r.name}: {int(zero.sum())} image(s) came back all zeros (Foolbox's CW-L2 does that where it "
                "found no adversarial); they are counted as failures and compared as the original image"
            )
        r.success = _predict(detector, r.x_adv) != y
        d = (r.x_adv - x).flatten(1).double()
        r.l2, r.linf = d.norm(dim=1), d.abs().amax(dim=1)
    ok = [r for r in results if r.ok]
    pairs = [_pair(a, b) for i, a in enumerate(ok) for b in ok[i + 1 :]]
    verdicts = _verdicts(attack_name, exact, results[0], results[1:], n, tol)
    reach = None
    spec = get_attack(attack_name)
    if p.implementations_note:
        notes.append(p.implementations_note)
    kappa = float(getattr(p, spec.margin)) if spec.margin else 0.0
    if kappa > 0 and n:
        reach = reachable_margin(detector, x, y)
        notes.append(
            f"kappa {kappa:g} is a logit margin: a margin-maximising PGD ({REACH_STEPS} sign steps of "
            f"{REACH_STEP}, anywhere in the [0, 1] box) reached it on {int((reach >= kappa).sum())} of {n} "
            f"images (largest margins {float(reach.min()):.1f} to {float(reach.max()):.1f}). {spec.title} returns "
            "the original image wherever no iterate reaches kappa"
        )
    notes.append("success: the detector's prediction on the returned image differs from the true label")
    clean_wrong = _predict(detector, x) != y if n else torch.zeros(0, dtype=torch.bool)
    clean_correct = int((~clean_wrong).sum())
    grades, tabulated = _grades(attack_name, detector, x, y, p, results, clean_wrong, budgets, seed)
    if grades and not exact and results[0].ok:
        verdicts.append(_optimality_verdict(grades, tol))
        notes.append(
            "optimality (AttackBench): per image the smallest successful perturbation over all runs of an "
            "implementation (0 if misclassified before the attack, infinite if never broken); the best curve takes "
            "per image the smallest over all implementations; optimality = 1 - (A - A_best) / (A_worst - A_best), "
            "areas under the robust-accuracy curves up to the best curve's largest distance, A_worst = clean "
            "accuracy x that distance. Passes and time in the grades table add up every run of the curve"
        )
    return CrosscheckReport(
        attack=attack_name,
        params=p.model_dump(),
        n=n,
        clean_correct=clean_correct,
        device=str(detector.device),
        exact=exact,
        tolerances=tol,
        results=results,
        pairs=pairs,
        verdicts=verdicts,
        notes=notes,
        reachable_margin=None if reach is None else reach.tolist(),
        grades=grades,
        budgets=tabulated,
        norm=spec.norm_of(p),
    )


def _grades(attack: str, detector: Detector, x: torch.Tensor, y: torch.Tensor, p: AttackParams,
            results: list[ImplResult], clean_wrong: torch.Tensor, budgets: list[float] | None,
            seed: int) -> tuple[list[Grade], list[float]]:
    """Every implementation's curve and optimality (see `bench.crosscheck.grade`); a budgeted attack is rerun
    at each budget other than the one already run."""
    spec = get_attack(attack)
    norm = spec.norm_of(p)
    ok = [r for r in results if r.ok]
    if not ok or len(x) == 0:
        return [], []
    dist: dict[str, torch.Tensor] = {}
    cost: dict[str, list[ImplResult]] = {}
    for r in ok:
        runs = [r]
        if spec.budget is not None and budgets:
            here = spec.budget_of(p)
            for b in budgets:
                if here is not None and math.isclose(b, here):
                    continue
                q = validate_params(attack, {**p.model_dump(), spec.budget: b})
                extra = _run_one(r.name, attack, detector, x, y, q, seed)
                if extra.ok:
                    extra.success = _predict(detector, extra.x_adv) != y
                    runs.append(extra)
        d = torch.stack([distances(x, run.x_adv, run.success, clean_wrong, norm) for run in runs]).amin(0)
        dist[r.name], cost[r.name] = d, runs
    opt, best, upper = optimality(dist)
    tabulated = curve_budgets(best, upper, budgets)
    n = len(x)
    grades = []
    for name, d in dist.items():
        runs = cost[name]
        grades.append(Grade(
            name, opt[name], [(b, robust_accuracy(d, b)) for b in tabulated],
            sum(r.passes.forward for r in runs) / n, sum(r.passes.backward for r in runs) / n,
            sum(r.seconds for r in runs) / n, len(runs)))
    grades.append(Grade("best of all", 1.0, [(b, robust_accuracy(best, b)) for b in tabulated], runs=0))
    return grades, tabulated


def _optimality_verdict(grades: list[Grade], tol: Tolerances) -> Verdict:
    subject, refs = grades[0], [g for g in grades[1:] if g.runs > 0]
    if not refs:
        return Verdict("optimality_gap", subject.name, "-", None, f">= -{tol.optimality_slack:g}", None)
    top = max(refs, key=lambda g: g.optimality)
    gap = subject.optimality - top.optimality
    return Verdict("optimality_gap", subject.name, top.name, gap, f">= -{tol.optimality_slack:g}",
                   gap >= -tol.optimality_slack - 1e-12)


def crosscheck_records(report: CrosscheckReport) -> list[dict[str, Any]]:
    """Flat rows for the store: implementation, metric, value, tolerance, verdict (+ attack, detail)."""
    rows: list[dict[str, Any]] = []
    for r in report.results:
        if not r.ok:
            rows.append(
                dict(
                    attack=report.attack,
                    implementation=r.name,
                    metric="runs",
                    value=None,
                    tolerance="no error",
                    verdict="fail",
                    detail=r.error,
                )
            )
            continue
        for metric, value in r.summary(report.n).items():
            rows.append(
                dict(
                    attack=report.attack,
                    implementation=r.name,
                    metric=metric,
                    value=None if math.isnan(value) else value,
                    tolerance=None,
                    verdict=None,
                    detail=None,
                )
            )
    for p in report.pairs:
        for metric in ("success_agreement", "max_abs_diff", "a_smaller", "b_smaller", "ties"):
            value = getattr(p, metric)
            rows.append(
                dict(
                    attack=report.attack,
                    implementation=f"{p.a} vs {p.b}",
                    metric=metric,
                    value=None if math.isnan(value) else value,
                    tolerance=None,
                    verdict=None,
                    detail=f"{p.n_both} images broken by both",
                )
            )
    for g in report.grades:
        if g.runs == 0:
            continue
        rows.append(dict(attack=report.attack, implementation=g.name, metric="optimality", value=g.optimality,
                         tolerance=None, verdict=None,
                         detail=f"{g.runs} run(s); curve " + ", ".join(f"{b:.4g}: {a:.3f}" for b, a in g.curve)))
    for v in report.verdicts:
        rows.append(
            dict(
                attack=report.attack,
                implementation=f"{v.subject} vs {v.reference}",
                metric=v.metric,
                value=v.value,
                tolerance=v.tolerance,
                verdict="n/a" if v.ok is None else ("pass" if v.ok else "fail"),
                detail=None,
            )
        )
    return rows

