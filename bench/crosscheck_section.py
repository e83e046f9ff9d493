"""The suite's `crosscheck:` section: cross-checks land in the database and render into the leaderboard.

Each entry: `{attack, model, implementations: [native, art, foolbox, file.py:MyAttack], params, n}`;
the first implementation is the one under test, the others are references. Images are the first `n`
attacked test fakes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError
from bench.suite.plan import PLAN_VERSION, digest

if TYPE_CHECKING:
    from bench.runner import Runner


class CrosscheckEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attack: str
    model: str
    implementations: list[str] = Field(min_length=2)
    params: dict[str, Any] = Field(default_factory=dict)
    n: int = Field(16, ge=1, le=1_000_000, strict=True)


def entries(raw: list[dict], models: dict, base_dir: Path, load_plugins: bool = True) -> list[CrosscheckEntry]:
    """Validate the section; user attack paths are resolved relative to the suite's folder.

    Each implementation is a backend registered for the attack (`native`, `art`, `foolbox`) or a user attack
    (`file.py:Name`, `module:Name`) that is a Python function or class of the attack contract; with
    `load_plugins` false, a user attack is checked by name only (its code is not imported).
    """
    from bench.attacks.registry import get_attack
    from bench.attacks.user import is_user_spec, load_user_attack
    from bench.suite.validate import short

    out = []
    for i, item in enumerate(raw):
        try:
            e = CrosscheckEntry.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BenchError(f"crosscheck[{i}].{'.'.join(str(p) for p in err['loc'])}", err["msg"]) from None
        if e.model not in models:
            raise BenchError(f"crosscheck[{i}].model", f"unknown model {short(e.model)}")
        spec = get_attack(e.attack, where=f"crosscheck[{i}].attack")
        try:
            spec.params.model_validate(e.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise BenchError(f"crosscheck[{i}].params.{loc}".rstrip("."), err["msg"]) from None
        impls = []
        for j, impl in enumerate(e.implementations):
            where = f"crosscheck[{i}].implementations[{j}]"
            path, sep, name = impl.partition(":")
            if sep and path.endswith(".py") and not Path(path).is_absolute():
                impl = f"{base_dir / path}:{name}"
            if is_user_spec(impl) and path.split(".")[0] in sys.stdlib_module_names:
                raise BenchError(where, f"{short(impl)} is from the standard library, not an attack: name a "
                                 "registered backend or your attack's 'file.py:Name'")
            if not is_user_spec(impl):
                if impl not in spec.backends:
                    raise BenchError(where, f"{short(impl)} is not an implementation of {e.attack}; use one of "
                                     f"{', '.join(sorted(spec.backends))} or a user attack 'file.py:Name'")
            elif load_plugins:
                try:
                    load_user_attack(impl)
                except BenchError as exc:
                    raise type(exc)(where, str(exc)) from None
            elif path.endswith(".py") and not Path(impl.rpartition(":")[0]).is_file():
                raise BenchError(where, f"attack file {impl.rpartition(':')[0]} does not exist")
            impls.append(impl)
        out.append(e.model_copy(update={"implementations": impls}))
    return out


def entry_key(plan, seed: int, e: CrosscheckEntry) -> str:
    """The cell key of one cross-check: its settings, the model, the data and the images."""
    return digest(["crosscheck", PLAN_VERSION, e.model_dump(), plan.models[e.model].key, plan.data_key,
                   plan.attack_ids[: e.n], seed])


def run_crosschecks(runner: Runner) -> None:
    from bench.crosscheck import crosscheck, crosscheck_records

    for e in entries(runner.s.crosscheck, runner.ls.models, runner.ls.base_dir):
        key = entry_key(runner.plan, runner.s.seed, e)
        if runner._done(key):
            runner.stats.reused += 1
            continue
        data = runner.attacked.subset(range(min(e.n, len(runner.attacked))))
        report = crosscheck(runner.detector(e.model), data.images, data.labels, e.attack, e.params,
                            e.implementations, seed=int(key[:8], 16))
        metrics = {"ok": report.verdict_ok, "records": crosscheck_records(report), "markdown": report.to_markdown()}
        runner.store.put(key, "crosscheck", e.model_dump(), metrics, 0.0, str(runner.device), runner.run_id)
        runner.stats.computed += 1


def crosscheck_section(board) -> str:
    parts = ["## Cross-checks of attack implementations"]
    for e in entries(board.s.crosscheck, board.ls.models, board.ls.base_dir):
        r = board.store.get(entry_key(board.plan, board.s.seed, e))
        title = f"### {e.attack} on {e.model}: {', '.join(Path(i).name for i in e.implementations)}"
        if r is None:
            parts.append(f"{title}\n\nNot run yet.")
            continue
        verdict = "all verdicts pass" if r.metrics["ok"] else "**disagreement: at least one verdict fails**"
        parts.append(f"{title}\n\n{verdict}\n\n{r.metrics['markdown']}")
    return "\n\n".join(parts)
