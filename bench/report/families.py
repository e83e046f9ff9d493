"""Table II, one compact table per attack family (single-step, iterative, minimum-norm): per model the
unperturbed fakes, the controls, and each attack of the family black-box, white-box and (for defended models)
adaptive. A family with more attacks than fit in `MAX_COLUMNS` columns continues in a second table."""

from __future__ import annotations

from bench.attacks.registry import get_attack
from bench.report.board import UNAWARE, Board
from bench.report.controls import control_columns, point_params
from bench.report.format import compact, tabulate
from bench.report.marks import best_note, gave_up_note, grid_groups, grid_label, mark_best
from bench.report.replicas import (
    aggregate_cells,
    attack_cells,
    clean_metric,
    group_label,
    group_rows,
    may_be_best,
    pool_groups,
)

MAX_COLUMNS = 10
FAMILY_TITLES = {"single-step": "single-step attacks", "iterative": "iterative attacks",
                 "minimum-norm": "minimum-norm attacks"}
THREATS = {("transfer", False): "black-box", ("white-box", False): "white-box",
           ("white-box", True): "adaptive"}
NOT_APPLICABLE = "–"


def defended(v: dict) -> bool:
    """Whether a variant row is a model behind an evaluation-time defense (pandas leaves NaN where there is none)."""
    return isinstance(v.get("defense"), str)


def families(b: Board) -> dict[str, list[str]]:
    """Family -> the suite's attack keys in it (its table point's family), in the suite's order."""
    out: dict[str, list[str]] = {}
    for key in b.attack_keys():
        point = next((a for a in b.ls.attacks if a.key == key and a.in_table), None)
        if point is not None:
            out.setdefault(point.family, []).append(key)
    return out


def _threats(b: Board) -> list[tuple[str, bool]]:
    cols = [("transfer", False), ("white-box", False)]
    if any(d.adaptive for d in b.s.defenses.values()):
        cols.append(("white-box", True))
    return cols


def caption_n(b: Board) -> str:
    """The n and seeds behind the compact cells of Tables I and II."""
    seeds = b.s.seeds
    m = next((m for m in b.clean_records.values() if m), None)
    fakes, images = (m.fake_recall["n"], m.accuracy["n"]) if m else (None, None)
    per = " per seed" if seeds > 1 else ""
    text = (f"n = {len(b.results.plan.attack_ids)} attacked fakes{per} (unperturbed fakes: {fakes}; all test "
            f"images: {images})")
    if seeds > 1:
        text += f"; each cell the mean over {seeds} training seeds"
    return text + "; cells: accuracy in % (95% interval)"


def family_tables(b: Board) -> str:
    ctl = control_columns(b)
    parts = ["## Table II: accuracy on perturbed fake test images, by attack family",
             f"Share of the attacked fakes still detected, higher is more robust; {caption_n(b)}. Black-box: made on "
             "another model (transfer); white-box: made on the scored model (for a defended model, on its "
             "undefended base, then passed through the defense, as in the paper); adaptive: made through the "
             "defense. Controls (never ranked or marked best): storage only, random sign noise of the attack's "
             "L-inf budget, and a Gaussian direction scaled to an L2 attack's budget (L2 noise)."]
    for fam, keys in families(b).items():
        noise = sorted({ce for k in keys for ce in ctl.noise.get(k, [])})
        ref = ["Unperturbed fakes"] + (["Storage only (control)"] if ctl.storage else []) \
            + [_noise_header(c, e) for c, e in noise]
        per_attack = len(_threats(b))
        room = max(1, (MAX_COLUMNS - 1 - len(ref)) // per_attack)
        chunks = [keys[i:i + room] for i in range(0, len(keys), room)]
        for c, chunk in enumerate(chunks):
            title = f"### {FAMILY_TITLES.get(fam, fam).capitalize()}" + (" (continued)" if c else "")
            parts.append(title + "\n\n" + _family_table(b, chunk, ctl, noise))
        params = "; ".join(f"{a.key}: {a.backend}, {point_params(b, a)}" for a in b.ls.attacks
                           if a.in_table and a.key in keys)
        parts.append(f"Parameters, as the backend ran them: {params}.")
    notes = [best_note(b), gave_up_note(b), _sources_note(b), storage_note(b)]
    parts.append("\n\n".join(n for n in notes if n))
    return "\n\n".join(parts)


def _noise_header(control: str, eps: float) -> str:
    return f"{'Noise' if get_attack(control).norm == 'linf' else 'L2 noise'} at eps {eps:g} (control)"


def _family_table(b: Board, keys: list[str], ctl, noise: list[tuple[str, float]]) -> str:
    threats = _threats(b)
    headers = ["Model", "Unperturbed fakes"] + (["Storage only (control)"] if ctl.storage else []) \
        + [_noise_header(c, e) for c, e in noise]
    headers += [f"{b.attack_title(k)} {THREATS[t]}" for k in keys for t in threats]
    rows, vals, eligible = [], [], []
    per_group: dict[str, list[dict | None]] = {}
    for v in group_rows(b):
        cols: list[dict | None] = [clean_metric(b, v, "fake_recall")]
        texts = [compact(cols[0])]
        for kind, e in ([(ctl.storage, None)] if ctl.storage else []) + noise:
            cols.append(None)  # controls: shown, never marked best
            texts.append(compact(ctl.value(v, kind, e)))
        for k in keys:
            for threat, adaptive in threats:
                if adaptive and not defended(v):
                    cols.append(None)
                    texts.append(NOT_APPLICABLE)
                    continue
                acc, text = aggregate_cells(b, attack_cells(b, v, k, threat, adaptive=adaptive), fmt=compact)
                cols.append(acc)
                texts.append(text)
        per_group[v["name"]] = cols
        rows.append([group_label(b, v)] + texts)
        vals.append(cols)
        eligible.append(may_be_best(b, v))
    for (base, dname), names in grid_groups(b).items():
        pooled = [pool_groups([per_group[n][j] for n in names if n in per_group]) for j in range(len(headers) - 1)]
        rows.append([grid_label(b, base, dname, names)] + [compact(p) if p else "" for p in pooled])
        vals.append(pooled)
        eligible.append(False)  # an average over a grid of models
    mark_best(rows, vals, eligible, fmt=compact)
    keep = [0] + [j for j in range(1, len(headers)) if any(r[j] not in ("n/a", "", NOT_APPLICABLE) for r in rows)]
    return tabulate([[r[j] for j in keep] for r in rows], [headers[j] for j in keep], tablefmt="github")




def storage_note(b: Board) -> str:
    """How the attacks were made with respect to the storage (Table II's note)."""
    aware = [a.key for a in b.ls.attacks if a.storage_aware]
    unaware = list(dict.fromkeys(a.key for a in b.ls.attacks if not a.storage_aware))
    text = ("Attacks are made through the suite's storage (gradients through it, every success judged on the "
            "stored image) and deliver 8-bit images within their budget" if aware else "")
    if unaware:
        text += ("; " if text else "") + (f"{', '.join(unaware)}: {UNAWARE}, made on the bare detector and then "
                                          "stored and scored the same way")
    return text + ". " if text else ""


def _sources_note(b: Board) -> str:
    pairs = sorted({(r["source"], r["target"]) for r in b.attack if r["threat"] == "transfer"})
    first = [f"{s} -> {t}" for s, t in pairs if "@seed" not in s and "@seed" not in t]
    if not pairs:
        return "Black-box: no transfer pair declared."
    more = " (the same pairs for every training seed)" if len(first) < len(pairs) else ""
    return f"Black-box pairs (source -> target): {', '.join(first)}{more}."
