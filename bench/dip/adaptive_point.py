"""One adaptive attack through DIP as plain data (no torch: the report reads it): the attack, its parameters and
restarts, and the roles of its cells (the attack as given, and its convergence twin with more steps)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.attacks.registry import get_attack

ATTACK, TWIN = "attack", "convergence"  # the roles of the cells: the attack as given, its twin with more steps


@dataclass(frozen=True)
class AdaptivePoint:
    """One adaptive attack: the attack, its native parameters and restarts."""

    attack: str
    params: dict
    restarts: int

    @property
    def step_param(self) -> str:
        """The parameter the twin multiplies: the attack's declared iteration count (`register_attack`)."""
        name = get_attack(self.attack).iterations
        if name is None:
            raise ValueError(f"attack {self.attack!r} declares no iteration parameter")
        return name

    @property
    def steps(self) -> int:
        return int(self.params[self.step_param])

    def scaled(self, factor: int) -> AdaptivePoint:
        """The same attack with `factor` times its steps (PGD) or iterations (CW-L2)."""
        return AdaptivePoint(self.attack, {**self.params, self.step_param: self.steps * factor}, self.restarts)

    @property
    def title(self) -> str:
        """The attack in words (`AttackParams.describe`), with its restarts when more than one."""
        spec = get_attack(self.attack)
        extra = f", {self.restarts} restarts" if self.restarts > 1 else ""
        return spec.params.model_validate(self.params).describe(spec.title) + extra
