"""What a backend actually used of an attack point's parameters.

A suite declares one parameter set per attack; a toolkit may have no equivalent for some of them (ART's and
Foolbox's CW-L2 start c at `initial_const` and search upward without a ceiling, so `c_max` is not passed).
Each backend declares the parameters it ignores here, and how it uses a parameter where that differs from the
native backend (`declare_behaviour`); `effective_params` renders every parameter as what was run, e.g.
`c_max=100.0 (not used by foolbox)` or `steps=20 (art: returns the last iterate ...)`. The craft cell stores that
rendering with its metrics, so the leaderboard prints what the backend used from the store alone.
"""

from __future__ import annotations

from typing import Any

_UNUSED: dict[tuple[str, str], dict[str, str]] = {}
_BEHAVIOUR: dict[tuple[str, str], dict[str, str]] = {}


def declare_unused(attack: str, backend: str, params: dict[str, str]) -> None:
    """`backend` of `attack` ignores `params` (name -> why, printed after 'not used by <backend>')."""
    _UNUSED.setdefault((attack, backend), {}).update(params)


def declare_behaviour(attack: str, backend: str, params: dict[str, str]) -> None:
    """`backend` of `attack` uses `params` as described (name -> what it does, printed after '<backend>:')."""
    _BEHAVIOUR.setdefault((attack, backend), {}).update(params)


def unused_params(attack: str, backend: str) -> dict[str, str]:
    return dict(_UNUSED.get((attack, backend), {}))


def effective_params(attack: str, backend: str, params: dict[str, Any]) -> dict[str, str]:
    """Each parameter as run: its value, or its value marked as not used by the backend (with why)."""
    unused = _UNUSED.get((attack, backend), {})
    behaviour = _BEHAVIOUR.get((attack, backend), {})
    out = {}
    for k, v in params.items():
        if k in unused:
            why = f": {unused[k]}" if unused[k] else ""
            out[k] = f"{v} (not used by {backend}{why})"
        elif k in behaviour:
            out[k] = f"{v} ({backend}: {behaviour[k]})"
        else:
            out[k] = str(v)
    return out


def render_params(effective: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in effective.items())


# The toolkits' CW-L2: c starts at c_min and grows (ART: per-step line search on c; Foolbox: x10 until success,
# then bisection) with no upper end; step_rule is native only (ART always line-searches, Foolbox always uses Adam).
declare_unused("cw_l2", "art", {"c_max": "it has no upper end of the c search", "abort_early": "",
                                "step_rule": "it always line-searches the step"})
declare_unused("cw_l2", "foolbox", {"c_max": "it has no upper end of the c search",
                                    "step_rule": "it always uses Adam"})
declare_unused("apgd", "art", {"random_start": "it always starts from a random point of the ball"})
# ART 1.20.1's AutoProjectedGradientDescent (read in its source): see `bench.attacks.toolkits.art_apgd`.
declare_behaviour("apgd", "art", {
    "steps": "returns the last iterate where it is misclassified, else the random start, not the highest-loss "
             "iterate; halves the step where the loss beat the best loss (not the previous iterate) in under 75% of "
             "the steps since the last checkpoint, or where the best loss has not risen since it",
    "restarts": "each restart only on the images still classified correctly, from the previous start plus new noise",
})
