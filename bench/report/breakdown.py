"""Leaderboard sections for data with subsets and videos: Table I and Table II per subset, which detector
is worth attacking on each subset, and video-level scores. Rendered from the stored cell metrics that
`bench.results.subset_metrics` computes (`by_subset`, `video`, `auroc_lo`/`auroc_hi`)."""

from __future__ import annotations

from bench.report.board import Board
from bench.report.format import md_inline, num, prop, tabulate
from bench.report.sanity import auroc_text, near_chance


def _subsets(board: Board) -> list[str]:
    names: dict[str, None] = {}
    for m in board.clean.values():
        for s in (m.get("by_subset") or {}) if m else {}:
            names.setdefault(s)
    return sorted(names)


def _worth_attacking(board: Board, subset: str) -> str:
    ok = []
    for v in board.variants:
        c = board.clean.get(v["name"])
        m = (c.get("by_subset") or {}).get(subset) if c else None
        if m and not near_chance(m):
            ok.append((m["auroc"], v["label"]))
    if not ok:
        return (f"On {subset} every detector is near chance (†): no robustness number there means anything; "
                "none is worth attacking.")
    ok.sort(reverse=True)
    names = ", ".join(f"{label} (AUROC {a:.3f})" for a, label in ok)
    return f"Worth attacking on {subset} (detects above chance, best first): {names}."


def subset_tables(board: Board) -> str:
    """Table I and Table II per subset, with a dagger on detectors near chance there and which ones are
    worth attacking."""
    subsets = _subsets(board)
    if not subsets:
        return ""
    keys = board.attack_keys()
    parts = ["## Per subset\n\nThe test set broken down by the manifest's subset column; each subset is balanced, "
             "so the subset itself is no label cue. † marks a detector near chance on that subset (it calls most "
             "images of one class the other class, or its AUROC's 95% interval reaches 0.5: the "
             "[near-chance-on-subset](../docs/checks/near-chance-on-subset.md) check); its accuracy under attack "
             "there is not evidence of robustness. AUROC intervals: DeLong, 95%."]
    for s in subsets:
        t1, t2 = [], []
        for v in board.variants:
            c = board.clean.get(v["name"])
            m = (c.get("by_subset") or {}).get(s) if c else None
            label = v["label"] + (" †" if m and near_chance(m) else "")
            t1.append([label] + ([prop(m["accuracy"]), prop(m["fake_recall"]), prop(m["real_recall"]),
                                  auroc_text(m)] if m else ["n/a"] * 4))
            row = [label, prop(m["fake_recall"]) if m else "n/a"]
            for k in keys:
                for threat in ("transfer", "white-box"):
                    found = board.cell(v, k, threat)
                    res = found["metrics"] if found and isinstance(found["metrics"], dict) else None
                    acc = (res.get("by_subset") or {}).get(s) if res else None
                    gave_up = found is not None and found["craft_key"] in board.gave_up
                    row.append(prop(acc) + (" ‡" if gave_up and acc else ""))
            t2.append(row)
        h2 = ["Model", "Unperturbed fakes"]
        for k in keys:
            h2 += [f"{board.attack_title(k)} black-box", f"{board.attack_title(k)} white-box"]
        parts.append(f"### Subset {md_inline(s)}: Table I (unperturbed test images)\n\n"
                     + tabulate(t1, ["Model", "Accuracy", "Fake recall", "Real recall", "AUROC [95% CI]"],
                                tablefmt="github")
                     + f"\n\n### Subset {s}: Table II (perturbed fake test images)\n\n"
                     + tabulate(t2, h2, tablefmt="github") + "\n\n" + _worth_attacking(board, s))
    return "\n\n".join(parts)


def video_table(board: Board) -> str:
    """Video-level accuracy and AUROC (mean P(real) over each video's frames) when groups are videos."""
    rows = []
    for v in board.variants:
        c = board.clean.get(v["name"])
        m = c.get("video") if c else None
        if m:
            rows.append([v["label"], m["n_videos"], num(m["frames_per_video"], 1), prop(m["accuracy"]), auroc_text(m)])
    if not rows:
        return ""
    return ("## Video level\n\nOne score per video (the manifest's group): the mean P(real) over its test frames, "
            "threshold 0.5.\n\n" + tabulate(rows, ["Model", "Videos", "Frames per video", "Accuracy",
                                                  "AUROC [95% CI]"], tablefmt="github"))


def breakdown_sections(board: Board) -> str:
    """Everything this module renders, for the leaderboard (empty when the data has no subsets or videos)."""
    return "\n\n".join(p for p in (subset_tables(board), video_table(board)) if p)
