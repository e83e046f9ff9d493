"""Leaderboard sections of the paper's DIP experiment: Tables III and IV, and Fig. 6 beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.dip.figure import plot_trajectories
from bench.dip.protocol import UNPERTURBED_FAKE, UNPERTURBED_REAL
from bench.report.format import num, prop


def dip_sections(board, out_dir: Path, stem: str) -> str:
    """Tables III and IV and Fig. 6 from the stored DIP cell (a `bench.report.leaderboard.Board`)."""
    cfg = board.s.dip
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "dip"]
    if cfg is None or not found:
        return ""
    r = found[0]
    if not isinstance(r["metrics"], dict):
        return "## Deep Image Prior defense\n\nNot run yet: run `bench run`."
    m = r["metrics"]
    clf = board.ls.models[cfg.classifier].label
    if board.s.seeds > 1:  # one model's protocol: replica 0 of the classifier (bench.suite.replicas)
        clf += f" (seed 0 of {board.s.seeds})"
    cols = [("accuracy", "Accuracy"), ("fake_precision", "Fake precision"), ("fake_recall", "Fake recall"),
            ("real_precision", "Real precision"), ("real_recall", "Real recall")]
    rows = []
    for t, o in m["overall"].items():
        rows.append([f"DIP + {clf}", t] + [prop(o[c]) for c, _ in cols] + [num(o["auroc"])])
    b = m["baseline"]
    rows.append([f"{clf}, no defense", "0.5"] + [prop(b[c]) for c, _ in cols] + [num(b["auroc"])])
    choice = m.get("readout_choice")
    readout = f"iteration {m['readout']} of {m['iterations']}"
    if choice:
        tried = ", ".join(f"{k}: {100 * v:.0f}%" for k, v in choice["accuracy"].items())
        readout += f", chosen automatically on {choice['n_images']} held-out calibration images ({tried})"
    t3 = ("## Table III: Deep Image Prior defense, overall\n\n"
          f"{m['n_images']} test images, up to {cfg.per_category} sampled per category (section V-C), each purified "
          f"by DIP and read out at "
          f"{readout}; {m['seconds_per_image']:.1f} s per image on `{r['device']}`. Mean PSNR of the purified image "
          f"to its input: {m['psnr_to_input']:.1f} dB.\n\n"
          + tabulate(rows, ["Classifier", "Threshold"] + [h for _, h in cols] + ["AUROC"], tablefmt="github"))
    thresholds = list(m["overall"])
    cats = sorted(m["per_category"], key=lambda c: (c.startswith("unperturbed"), c))
    rows = [[c] + [prop(m["per_category"][c][t]) for t in thresholds] + [prop(m["per_category"][c]["baseline"])]
            for c in cats]
    h = m["headline"]
    lines = [f"- threshold {t}: perturbed fake-wrong {prop(h[t]['fake_wrong'])}; all other categories "
             f"{prop(h[t]['others'])} (the paper: 95% and 98% at 0.25)" for t in thresholds]
    t4 = ("## Table IV: Deep Image Prior defense by category\n\nAccuracy of the DIP defense per category and "
          "threshold, beside the classifier without defense (threshold 0.5).\n\n"
          + tabulate(rows, ["Category"] + [f"DIP, threshold {t}" for t in thresholds] + ["No defense"],
                     tablefmt="github") + "\n\n" + "\n".join(lines))
    traj = m.get("trajectories") or {}
    fig_text = ""
    if traj and board.s.report.figures:
        wanted = [c for c in traj if "white-box" in c and "fake-wrong" in c][:2]
        wanted += [c for c in (UNPERTURBED_FAKE, UNPERTURBED_REAL) if c in traj]
        wanted = wanted or list(traj)[:4]
        path = out_dir / f"{stem}-dip-trajectories.png"
        plot_trajectories({c: np.asarray(traj[c]) for c in wanted[:4]}, np.asarray(m["trajectory_iterations"]),
                          m["readout"], 0.5, path)
        board.figures.append(path)
        fig_text = ("\n\n### DIP trajectories (the paper's Fig. 6)\n\nP(real) of the purified image along the DIP "
                    "iterations, one image per category; the vertical line marks the readout.\n\n"
                    f"![DIP trajectories]({path.name})")
    return t3 + "\n\n" + t4 + fig_text
