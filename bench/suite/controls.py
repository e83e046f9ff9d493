"""The cells a plan adds beside the suite's attacks: controls (storage only, random noise) and check attacks.

Controls (`bench.attacks.controls`) carry no adversarial information; scored beside each attack they show how
much of its effect storage or random noise of the same size would have had:

- one `storage` control per model (the clean fakes through the suite's storage), scored on each of its variants;
- one `noise` control per distinct L-inf budget of the suite's attack points (grid points included);
- one `noise_l2` control per minimum-norm (or unbounded L2) attack and source model, at the median L2 (before
  storage) of that attack's examples on the source: its craft depends on the attack's craft.

Check attacks (docs/checks/) run on at most `evaluation.checks.n` fakes: one unbounded attack per variant
(through the defense for defended variants), and per model the convergence pair (the attack as given, and with
`steps_factor` x its steps). All are white-box, never ranked, never in Table II's attack columns.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bench.attacks.registry import get_attack
from bench.errors import BenchError, validation_error
from bench.suite.load import AttackPoint, LoadedSuite, runs_against
from bench.suite.plan import Plan, add_attack_cell
from bench.suite.schema import CheckAttack


def control_point(key: str, attack: str, params: dict[str, Any], varying: tuple[str, ...] = ()) -> AttackPoint:
    """A control: it reads no detector, so being made through the storage or not changes nothing (marked aware)."""
    spec = get_attack(attack)
    return AttackPoint(key, attack, "native", spec.params.model_validate(params).model_dump(), False, varying,
                       spec.title, spec.family, spec.norm, spec.budget, spec.deterministic, role="control")


def check_point(ls: LoadedSuite, key: str, cfg: CheckAttack, where: str, update: dict | None = None,
                restarts: int = 1) -> AttackPoint:
    spec = get_attack(cfg.attack, where=f"{where}.attack")
    if cfg.backend not in spec.backends:
        raise BenchError(f"{where}.backend", f"attack {cfg.attack!r} has no backend {cfg.backend!r}; available: "
                                             f"{', '.join(sorted(spec.backends))}")
    try:
        params = spec.params.model_validate({**cfg.params, **(update or {})}).model_dump()
    except ValidationError as exc:
        raise validation_error(exc, f"{where}.params") from None
    return AttackPoint(key, cfg.attack, cfg.backend, params, False, (), spec.title, spec.family_of(params),
                       spec.norm_of(params), spec.budget, spec.deterministic_for(params), role="check",
                       images=ls.suite.evaluation.checks.n, restarts=restarts,
                       storage_aware=ls.suite.evaluation.storage_aware)


def linf_budgets(ls: LoadedSuite, model: str | None = None) -> list[float]:
    """Every distinct L-inf budget of the suite's attack points (that run against `model`, when given), in order."""
    return sorted({float(ap.budget_value) for ap in ls.attacks
                   if ap.budget is not None and ap.norm == "linf" and ap.family != "control"
                   and (model is None or runs_against(ls, ap.key, model))})


def add_controls(plan: Plan, ls: LoadedSuite) -> None:
    seed = ls.suite.seed
    models = [v for v in plan.variants.values() if v.defense is None]
    points = [control_point("storage", "storage", {})]
    points += [control_point("noise", "noise", {"eps": e, "seed": seed}, ("eps",)) for e in linf_budgets(ls)]
    for ap in points:
        for m in models:
            if ap.attack == "noise" and ap.params["eps"] not in linf_budgets(ls, m.name):
                continue  # noise only at the L-inf budgets of the attacks this model meets
            for v in plan.variants.values():
                if v.model == m.name:
                    add_attack_cell(plan, ls, ap, m.name, v.name, "white-box")
    for ap in ls.attacks:
        if not (ap.family == "minimum-norm" or (ap.norm == "l2" and ap.budget is None)):
            continue
        for m in models:
            craft = next((c.craft for c in plan.attacks if c.attack == ap and c.source.name == m.name), None)
            if craft is None:
                continue
            point = control_point("noise_l2", "noise_l2", {"of": craft.key, "of_label": ap.label, "seed": seed},
                                  ("of_label",))
            for v in plan.variants.values():
                if v.model == m.name:
                    add_attack_cell(plan, ls, point, m.name, v.name, "white-box", extra_deps=(craft.key,))


def _unbounded(ls: LoadedSuite) -> AttackPoint | None:
    checks = ls.suite.evaluation.checks
    return None if checks.unbounded is None else check_point(ls, "unbounded", checks.unbounded,
                                                             "evaluation.checks.unbounded")


def _convergence(ls: LoadedSuite) -> tuple[AttackPoint, AttackPoint] | None:
    cfg = ls.suite.evaluation.checks.convergence
    if cfg is None:
        return None
    where = "evaluation.checks.convergence"
    base = check_point(ls, "convergence", cfg, where)
    if "steps" not in base.params:
        raise BenchError(f"{where}.attack", f"attack {cfg.attack!r} has no `steps` parameter to multiply")
    more: dict[str, Any] = {"steps": int(base.params["steps"]) * cfg.steps_factor}
    if cfg.restarts > 1:
        if "random_start" not in base.params:
            raise BenchError(f"{where}.restarts", f"attack {cfg.attack!r} has no `random_start` to restart from")
        more["random_start"] = True
    return base, check_point(ls, "convergence-stronger", cfg, where, more, restarts=cfg.restarts)


def derived_checks(ls: LoadedSuite) -> list[tuple[str, AttackPoint]]:
    """(where, attack point) of every check attack the suite's plan will hold: what `bench validate` checks."""
    out = []
    unbounded = _unbounded(ls)
    if unbounded is not None:
        out.append(("evaluation.checks.unbounded.params", unbounded))
    pair = _convergence(ls)
    if pair is not None:
        out += [("evaluation.checks.convergence.params", ap) for ap in pair]
    return out


def add_checks(plan: Plan, ls: LoadedSuite) -> None:
    ap = _unbounded(ls)
    if ap is not None:
        for v in list(plan.variants.values()):
            add_attack_cell(plan, ls, ap, v.name, v.name, "white-box")  # through the defense on defended variants
    pair = _convergence(ls)
    if pair is not None:
        for v in [v for v in plan.variants.values() if v.defense is None]:
            for ap in pair:
                add_attack_cell(plan, ls, ap, v.name, v.name, "white-box")


def add_controls_and_checks(plan: Plan, ls: LoadedSuite) -> None:
    """The controls (when `evaluation.controls`) and the check attacks of the suite's plan."""
    if ls.suite.evaluation.controls:
        add_controls(plan, ls)
    add_checks(plan, ls)
