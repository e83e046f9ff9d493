"""Leaderboard sections for data with subsets and videos: Table I and Table II per subset, which detector
is worth attacking on each subset, and video-level scores. Rendered from the stored cell metrics that
`bench.breakdown` computes (`by_subset`, `video`, `auroc_lo`/`auroc_hi`)."""

from __future__ import annotations

from collections.abc import Iterator

from tabulate import tabulate

from bench.report.format import num, prop

# A class recall below this, or an AUROC interval reaching down to 0.5, marks a detector near chance on a subset.
MIN_RECALL = 0.5


def auroc_text(m: dict | None) -> str:
    """`0.912 [0.871, 0.953]`, or just the value when the metrics carry no interval."""
    if not m or m.get("auroc") is None:
        return "n/a"
    if m.get("auroc_lo") is None:
        return num(m["auroc"])
    return f"{num(m['auroc'])} [{num(m['auroc_lo'])}, {num(m['auroc_hi'])}]"


def near_chance(m: dict) -> str | None:
    """Why a detector is near chance on these metrics (None when it is not): it calls most images of one class
    the other class, or its AUROC's 95% interval reaches 0.5."""
    fake, real = m["fake_recall"]["value"], m["real_recall"]["value"]
    if min(fake, real) < MIN_RECALL:
        return f"leans to '{'fake' if fake > real else 'real'}' (fake recall {fake:.1%}, real recall {real:.1%})"
    if m.get("auroc_lo") is not None and m["auroc_lo"] <= 0.5:
        return f"AUROC {auroc_text(m)} does not exclude chance (0.5)"
    return None


def near_chance_on_subset(clean: dict) -> Iterator:
    """Sanity check: a detector near chance on one subset of the data (see `near_chance`)."""
    from bench.report.sanity import Flag

    for name, r in clean.items():
        for subset, m in ((r.metrics.get("by_subset") or {}) if r else {}).items():
            why = near_chance(m)
            if why:
                yield Flag("near-chance-on-subset", name, f"subset {subset}: {why}; its accuracy under attack there "
                           "says little")


def _subsets(board) -> list[str]:
    names: dict[str, None] = {}
    for r in board.clean.values():
        for s in (r.metrics.get("by_subset") or {}) if r else {}:
            names.setdefault(s)
    return sorted(names)


def _worth_attacking(board, subset: str) -> str:
    ok = []
    for v in board.plan.variants.values():
        r = board.clean.get(v.name)
        m = (r.metrics.get("by_subset") or {}).get(subset) if r else None
        if m and not near_chance(m):
            ok.append((m["auroc"], v.label))
    if not ok:
        return (f"On {subset} every detector is near chance (†): no robustness number there means anything; "
                "none is worth attacking.")
    ok.sort(reverse=True)
    names = ", ".join(f"{label} (AUROC {a:.3f})" for a, label in ok)
    return f"Worth attacking on {subset} (detects above chance, best first): {names}."


def subset_tables(board) -> str:
    """Table I and Table II per subset, with a dagger on detectors near chance there and which ones are
    worth attacking."""
    subsets = _subsets(board)
    if not subsets:
        return ""
    keys = board._attack_keys()
    parts = ["## Per subset\n\nThe test set broken down by the manifest's subset column; each subset is balanced, "
             "so the subset itself is no label cue. † marks a detector near chance on that subset (it calls most "
             "images of one class the other class, or its AUROC's 95% interval reaches 0.5: the "
             "[near-chance-on-subset](../docs/checks/near-chance-on-subset.md) check); its accuracy under attack "
             "there is not evidence of robustness. AUROC intervals: DeLong, 95%."]
    for s in subsets:
        t1, t2 = [], []
        for v in board.plan.variants.values():
            r = board.clean.get(v.name)
            m = (r.metrics.get("by_subset") or {}).get(s) if r else None
            label = v.label + (" †" if m and near_chance(m) else "")
            t1.append([label] + ([prop(m["accuracy"]), prop(m["fake_recall"]), prop(m["real_recall"]),
                                  auroc_text(m)] if m else ["n/a"] * 4))
            row = [label, prop(m["fake_recall"]) if m else "n/a"]
            for k in keys:
                for threat in ("transfer", "white-box"):
                    found = board._cell(v, k, threat)
                    res = found[1] if found else None
                    acc = (res.metrics.get("by_subset") or {}).get(s) if res else None
                    gave_up = found is not None and found[0].craft.key in board.gave_up
                    row.append(prop(acc) + (" ‡" if gave_up and acc else ""))
            t2.append(row)
        h2 = ["Model", "Unperturbed fakes"]
        for k in keys:
            h2 += [f"{board._attack_title(k)} black-box", f"{board._attack_title(k)} white-box"]
        parts.append(f"### Subset {s}: Table I (unperturbed test images)\n\n"
                     + tabulate(t1, ["Model", "Accuracy", "Fake recall", "Real recall", "AUROC [95% CI]"],
                                tablefmt="github")
                     + f"\n\n### Subset {s}: Table II (perturbed fake test images)\n\n"
                     + tabulate(t2, h2, tablefmt="github") + "\n\n" + _worth_attacking(board, s))
    return "\n\n".join(parts)


def video_table(board) -> str:
    """Video-level accuracy and AUROC (mean P(real) over each video's frames) when groups are videos."""
    rows = []
    for v in board.plan.variants.values():
        r = board.clean.get(v.name)
        m = r.metrics.get("video") if r else None
        if m:
            rows.append([v.label, m["n_videos"], num(m["frames_per_video"], 1), prop(m["accuracy"]), auroc_text(m)])
    if not rows:
        return ""
    return ("## Video level\n\nOne score per video (the manifest's group): the mean P(real) over its test frames, "
            "threshold 0.5.\n\n" + tabulate(rows, ["Model", "Videos", "Frames per video", "Accuracy",
                                                  "AUROC [95% CI]"], tablefmt="github"))


def breakdown_sections(board) -> str:
    """Everything this module renders, for the leaderboard (empty when the data has no subsets or videos)."""
    return "\n\n".join(p for p in (subset_tables(board), video_table(board)) if p)
