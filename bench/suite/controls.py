"""The cells a plan adds beside the suite's attacks: controls (storage only, random noise) and check attacks.

Controls (`bench.attacks.controls`) carry no adversarial information; scored beside each attack they show how
much of its effect storage or random noise of the same size would have had:

- one `storage` control per model (the clean fakes through the suite's storage), scored on each of its variants;
- one `noise` control (random signs) per distinct L-inf budget of the suite's attack points (grid points included);
- one `noise_l2` control (a Gaussian direction scaled to the budget) per distinct L2 budget of the suite's attack
  points (PGD or APGD with `norm: l2`);
- one `noise_l2` control per minimum-norm (or unbounded L2) attack and source model, at the median L2 (before
  storage) of that attack's perturbed examples on the source: its craft depends on the attack's craft.

Check attacks (docs/checks/) run on at most `evaluation.checks.n` fakes: one unbounded attack per variant
(through the defense for defended variants); the not-converged reruns (`checks.longer_runs`): each of the suite's
iterative and minimum-norm attacks that declares its iteration parameter (`AttackSpec.iterations`), at its table
point, with `steps_factor` x its iterations, on every variant it is made on and scored on, compared with the
suite's own examples of the same images (the rerun's craft depends on the suite attack's craft); and, when
configured, the extra convergence pair of `checks.convergence` (an attack as given, and with more steps). All are
white-box, never ranked, never in Table II's attack columns.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bench.attacks.registry import NORMS, STORAGE_ONLY, controls_of, get_attack, noise_control
from bench.errors import BenchError, validation_error
from bench.suite.loaded import AttackPoint, LoadedSuite, runs_against
from bench.suite.plan import Plan, add_attack_cell
from bench.suite.schema import CheckAttack

# The check attacks' keys (their cells' `attack_key`), read by the checks that judge them (`bench.report.sanity`).
UNBOUNDED_CHECK, CONVERGENCE_CHECK, CONVERGENCE_STRONGER_CHECK = "unbounded", "convergence", "convergence-stronger"


def control_point(key: str, attack: str, params: dict[str, Any], varying: tuple[str, ...] = ()) -> AttackPoint:
    """A control: it reads no detector, so being made through the storage or not changes nothing (marked aware)."""
    spec = get_attack(attack)
    return AttackPoint(key, attack, "native", spec.params.model_validate(params).model_dump(), False, varying,
                       spec.title, spec.family, spec.norm, spec.budget, spec.deterministic, role="control")


def longer_point(ls: LoadedSuite, ap: AttackPoint, factor: int, reference: str) -> AttackPoint:
    """The suite attack point `ap` with `factor` x its iterations (its declared iteration parameter), as a check on
    the first `longer_runs.n` (else `checks.n`) attacked fakes, compared with the suite's own examples `reference`
    (a craft key)."""
    checks = ls.suite.evaluation.checks
    assert checks.longer_runs is not None
    spec = get_attack(ap.attack)
    assert spec.iterations is not None
    params = {**ap.params, spec.iterations: int(ap.params[spec.iterations]) * factor}
    params = spec.params.model_validate(params).model_dump()
    return AttackPoint(f"{ap.key}-x{factor}", ap.attack, ap.backend, params, False, ap.varying, spec.title,
                       spec.family_of(params), spec.norm_of(params), spec.budget, spec.deterministic_for(params),
                       ap.source_digest, role="check", images=checks.longer_runs.n or checks.n, reference=reference,
                       storage_aware=ap.storage_aware)


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


def budgets(ls: LoadedSuite, norm: str, model: str | None = None) -> list[float]:
    """Every distinct budget in `norm` of the suite's attack points (that run against `model`, when given), in
    order."""
    return sorted({float(ap.budget_value) for ap in ls.attacks
                   if ap.budget is not None and ap.norm == norm and ap.family != "control"
                   and (model is None or runs_against(ls, ap.key, model))})


def add_controls(plan: Plan, ls: LoadedSuite) -> None:
    seed = ls.suite.seed
    models = [v for v in plan.variants.values() if v.defense is None]
    points = [(control_point(c.name, c.name, {}), models) for c in controls_of(STORAGE_ONLY)]
    for norm in NORMS:  # the random-noise control of each norm, on a model only at the budgets of the attacks it meets
        noise = noise_control(norm)
        size = noise.params.size_param
        points += [(control_point(noise.name, noise.name, {size: e, "seed": seed}, (size,)),
                    [m for m in models if e in budgets(ls, norm, m.name)]) for e in budgets(ls, norm)]
    for ap, meets in points:
        for m in meets:
            for v in plan.variants.values():
                if v.model == m.name:
                    add_attack_cell(plan, ls, ap, m.name, v.name, "white-box")
    l2_noise = noise_control("l2")
    for ap in ls.attacks:
        if not (ap.family == "minimum-norm" or (ap.norm == "l2" and ap.budget is None)):
            continue
        for m in models:
            craft = next((c.craft for c in plan.attacks if c.attack == ap and c.source.name == m.name), None)
            if craft is None:
                continue
            point = control_point(l2_noise.name, l2_noise.name, {"of": craft.key, "of_label": ap.label, "seed": seed},
                                  ("of_label",))
            for v in plan.variants.values():
                if v.model == m.name:
                    add_attack_cell(plan, ls, point, m.name, v.name, "white-box", extra_deps=(craft.key,))


def rerun_targets(plan: Plan, ls: LoadedSuite) -> list[tuple[AttackPoint, str, str]]:
    """(suite attack point, variant, its craft key) for every white-box cell the not-converged check reruns: the
    table point of each iterative or minimum-norm attack that declares its iterations, made on the variant it
    is scored on (a plain model, or a defended variant attacked through its defense)."""
    cfg = ls.suite.evaluation.checks.longer_runs
    if cfg is None:
        return []
    out = []
    for c in plan.attacks:
        ap = c.attack
        if ap.role != "attack" or not ap.in_table or ap.family not in ("iterative", "minimum-norm"):
            continue
        if get_attack(ap.attack).iterations is None or c.threat != "white-box" or c.source.name != c.target.name:
            continue
        if cfg.replicas == "first" and ls.models[c.source.model].replica != 0:
            continue
        if (ap, c.source.name, c.craft.key) not in out:
            out.append((ap, c.source.name, c.craft.key))
    return out


def _unbounded(ls: LoadedSuite) -> AttackPoint | None:
    checks = ls.suite.evaluation.checks
    return None if checks.unbounded is None else check_point(ls, UNBOUNDED_CHECK, checks.unbounded,
                                                             "evaluation.checks.unbounded")


def _convergence(ls: LoadedSuite) -> tuple[AttackPoint, AttackPoint] | None:
    cfg = ls.suite.evaluation.checks.convergence
    if cfg is None:
        return None
    where = "evaluation.checks.convergence"
    base = check_point(ls, CONVERGENCE_CHECK, cfg, where)
    steps = get_attack(cfg.attack).iterations
    if steps is None:
        raise BenchError(f"{where}.attack", f"attack {cfg.attack!r} declares no iteration parameter to multiply")
    more: dict[str, Any] = {steps: int(base.params[steps]) * cfg.steps_factor}
    if cfg.restarts > 1:
        if "random_start" not in base.params:
            raise BenchError(f"{where}.restarts", f"attack {cfg.attack!r} has no `random_start` to restart from")
        more["random_start"] = True
    return base, check_point(ls, CONVERGENCE_STRONGER_CHECK, cfg, where, more, restarts=cfg.restarts)


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
    checks = ls.suite.evaluation.checks
    if checks.longer_runs is not None:
        for ap, v, craft_key in rerun_targets(plan, ls):
            longer = longer_point(ls, ap, checks.longer_runs.steps_factor, craft_key)
            add_attack_cell(plan, ls, longer, v, v, "white-box", extra_deps=(craft_key,))
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
