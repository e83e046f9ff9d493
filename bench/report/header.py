"""The leaderboard's title and three-line header (what was run, which commit computed the numbers and which one
rendered them, on what machine), and the full provenance that the appendix holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from bench.report.board import Board
from bench.report.format import md_inline
from bench.report.replicas import own_seeds_line
from bench.results.provenance import git_commit, is_ancestor


def board_cell_ids(b: Board) -> list[str]:
    """Every stored cell behind the board's numbers: models, clean and gradient cells, attacks and their crafts,
    sections."""
    r = b.results
    ids = [v["clean_key"] for v in b.variants] + [k for k in r.models.get("key", [])]
    ids += [x for row in b.every_cell for x in (row["key"], row["craft_key"])]
    ids += list(r.sections["key"]) if len(r.sections) else []
    ids += [g.key for g in r.plan.gradnorms.values()]
    return ids


def _day(t: float) -> str:
    return f"{dt.datetime.fromtimestamp(t, dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def numbers_line(b: Board, rendering: str | None = None) -> str:
    """Which commit(s) computed the stored cells, and whether the rendering commit differs (newer or not)."""
    rendering = rendering or git_commit()
    by = b.results.store.computed_by(board_cell_ids(b))
    if not by:
        return f"- Numbers: none stored yet; rendered by commit `{rendering}`."
    parts = []
    for d in by:
        name = f"`{d['commit']}`" if d["commit"] and d["commit"] != "unknown" else "an unrecorded commit"
        parts.append(f"{name} ({d['cells']} cells)" if len(by) > 1 else name)
    first, last = min(d["first"] for d in by), max(d["last"] for d in by)
    when = _day(last) if last - first < 60 else f"{_day(first)} to {_day(last)}"
    text = f"- Numbers: computed by {'commits ' if len(by) > 1 else 'commit '}{', '.join(parts)}, {when}; "
    commits = [d["commit"] for d in by]
    if commits == [rendering]:
        return text + "rendered by the same commit."
    if [(c or "").removesuffix("-dirty") for c in commits] == [rendering.removesuffix("-dirty")]:
        return text + f"rendered by `{rendering}`: the same commit, one of them with uncommitted changes (`-dirty`)."
    text += f"rendered by `{rendering}`"
    known = [c for c in commits if c and c != "unknown"]
    if not known:
        return text + ". The run recorded no commit (it was started outside a git checkout before bench read its " \
                      "own); `bench run --force` recomputes under a recorded commit."
    older = [is_ancestor(c, rendering) for c in known]
    if all(o is True for o in older) and len(known) == len(commits):
        return text + ": **the store was computed by an older commit than the one rendering it** (rerun " \
                      "`bench run` to recompute what changed)."
    return text + ", a different commit than the one that computed the numbers."


NOT_RECORDED = "not recorded (computed before bench recorded it)"


def _machine_text(run: dict[str, Any] | None) -> str:
    m = (run or {}).get("machine") or {}
    if not m:
        return NOT_RECORDED
    return (f"{m.get('cpu', 'unknown')} ({m.get('cpu_capability', '?')}), torch threads: "
            f"{m.get('torch_threads', '?')}, torch {m.get('torch', '?')}, BLAS {m.get('blas', '?')}, device "
            f"`{(run or {}).get('device', '?')}`")


def machine_short(b: Board) -> str:
    """The machine that computed the board's numbers: that of the runs that stored its cells (a later run that
    only read them from the store computed nothing), each machine with its share when there are several."""
    store = b.results.store
    shares: dict[str, int] = {}
    latest = b.results.run or {}
    for run_id, n in store.computing_runs(board_cell_ids(b)):
        # the latest run was read verified against its seal; an older one's seal goes stale when a later run
        # recomputes one of its cells, so only its machine is read
        run = latest if run_id == latest.get("run_id") else store.run_machine(run_id) if run_id is not None else None
        if run is not None:  # cells whose run row is gone (a damaged or hand-edited store) name no machine
            text = _machine_text(run)
            shares[text] = shares.get(text, 0) + n
    if not shares:
        shares = {_machine_text(b.results.run): 0}
    tail = "Suite, provenance and every cell: [appendix](#appendix)."
    if list(shares) == [NOT_RECORDED]:
        return (f"- Machine: {NOT_RECORDED}; numbers reproduce exactly only on the same CPU and thread count. "
                f"{tail}")
    if len(shares) == 1:
        return f"- Machine: {next(iter(shares))}; numbers reproduce exactly only there. {tail}"
    parts = "; ".join(f"{text} ({n} cells)" for text, n in sorted(shares.items(), key=lambda kv: -kv[1]))
    return (f"- Machines: the numbers were computed on {len(shares)} machines or thread counts: {parts}; each "
            f"cell reproduces exactly only on its own. {tail}")


def what_line(b: Board) -> str:
    s, ls = b.s, b.ls
    groups = len({rm.group_name for rm in ls.models.values()})
    defended = len(s.defenses)
    d = s.data
    data = f"`{d.source}`" + (f" at `{d.path}`" if d.path else f", {d.n} images") + f", {d.size} px"
    storage = f"JPEG q{s.evaluation.jpeg_quality}" if s.evaluation.storage == "jpeg" else s.evaluation.storage.upper()
    seeds = f" x {s.seeds} training seeds" if s.seeds > 1 else ""
    return (f"- Suite `{s.name}`" + (f", profile `{ls.profile}`" if ls.profile else "")
            + f": {groups} models{seeds}" + (f", {defended} evaluation-time defense(s)" if defended else "")
            + f", {len(b.attack_keys())} attacks; data {data}; {len(b.results.plan.attack_ids)} test fakes "
            f"attacked, adversarial images stored as {storage}.")


def title_and_header(b: Board) -> str:
    s, ls = b.s, b.ls
    lines = [f"# Leaderboard: `{s.name}`" + (f" (profile `{ls.profile}`)" if ls.profile else ""), "",
             what_line(b), numbers_line(b), machine_short(b)]
    if b.results.missing:
        lines += ["", f"> {b.results.missing} cells of this suite have no result in the store yet: run `bench run`."]
    return "\n".join(lines)


def provenance(b: Board) -> str:
    """The appendix's part: the suite's description, the last run, versions, machine, data, classes, seeds and
    the profile's overrides as YAML."""
    run = b.results.run
    s, ls = b.s, b.ls
    lines = ["## Suite, profile and provenance"]
    if s.description:
        lines += ["", md_inline(s.description.strip())]  # one paragraph: a description cannot add a heading
    lines += [""]
    if run:
        vers = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        lines += [
            f"- Last run: {_day(run['finished'] or run['started'])}, git `{run['git_commit']}`, device "
            f"`{run['device']}`, seed {run['seed']}; {run['cells_computed']} cells computed, {run['cells_reused']} "
            "from the store.",
            f"- Versions: {vers}.",
            machine_line(run.get("machine") or {}),
        ]
    d = s.data
    lines += [
        f"- Data: `{d.source}`" + (f" at `{d.path}`" if d.path else f", n={d.n}") +
        f", {d.size}x{d.size} px, {len(b.results.plan.attack_ids)} test fakes attacked; "
        f"adversarial images stored as {s.evaluation.storage}"
        + (f" (quality {s.evaluation.jpeg_quality})" if s.evaluation.storage == "jpeg" else "") + ".",
        "- Classes: fake = 0, real = 1; AUROC scores P(real); threshold 0.5. Every accuracy: value [95% interval] "
        "n=images (in the main tables: value (interval), n in the caption).",
    ]
    if s.seeds > 1:
        lines += [f"- Training seeds: every model trained {s.seeds} times (seeds {s.seed}..{s.seed + s.seeds - 1}); "
                  f"tables show the mean of the {s.seeds} seeds, its interval covering seeds and test images "
                  "([docs/intervals.md](../docs/intervals.md)); per-seed values: `bench export` (column `seed`)."]
    lines += own_seeds_line(b)
    if ls.overrides:
        dumped = yaml.safe_dump(ls.overrides, sort_keys=False).strip()
        lines += ["", f"Profile `{ls.profile}` overrides the suite with:", "", "```yaml", dumped, "```"]
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    """The appendix's line on what makes numbers machine-dependent (`bench.results.provenance.machine`)."""
    if not m:
        return ("- Machine-dependent: this run stored no machine description (made before it was recorded); "
                "numbers reproduce exactly only on the same CPU, thread count and package versions.")
    return (f"- Machine-dependent: CPU {m.get('cpu', 'unknown')} ({m.get('cpu_capability', '?')}), torch threads "
            f"{m.get('torch_threads', '?')}, torch {m.get('torch', '?')}, BLAS {m.get('blas', '?')}; numbers "
            "reproduce exactly only on the same machine and thread count (float rounding differs between CPUs "
            "and thread counts, and training amplifies it; deterministic algorithms are on where torch has them).")
