"""Leaderboard sections of the paper's DIP experiment: Tables III and IV, and Fig. 6 beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.dip.config import UNPERTURBED_FAKE, UNPERTURBED_REAL
from bench.dip.figure import plot_trajectories
from bench.report.format import num, prop, tabulate


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
          f"to its input: {m['psnr_to_input']:.1f} dB.{_sources_note(m)}\n\n"
          + tabulate(rows, ["Classifier", "Threshold"] + [h for _, h in cols] + ["AUROC"], tablefmt="github"))
    t3 += _adaptive_table(board, m, clf)
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


def _sources_note(m: dict) -> str:
    """How many distinct source images stand behind the n of Tables III and IV (one test fake is perturbed by
    many attacks, so its versions fill several categories), and the calibration's, which are never evaluated."""
    d = m.get("distinct_sources")
    if not d:
        return ""
    cal = m.get("calibration_sources")
    held = (f" The readout's {m['n_calibration']} calibration images come from {cal} other source images, none of "
            "them evaluated in any category.") if cal else ""
    return (f" The {m['n_images']} images come from {d['all']} distinct source images ({d['fake_wrong']} behind the "
            f"perturbed fake-wrong images, {d['others']} behind the others): a source perturbed by several attacks "
            f"stands in several categories, so intervals over n overstate the evidence.{held}")


def _attack_title(am: dict) -> str:
    p = am["params"]
    if am["attack"] == "pgd":
        extra = f", {am['restarts']} restarts" if am["restarts"] > 1 else ""
        return f"PGD L-inf eps {p['eps']:g}, {p['steps']} steps of {p['step_size']:g}, EOT {p['eot']}{extra}"
    return (f"CW-L2 kappa {p['confidence']:g}, c in [{p['c_min']:g}, {p['c_max']:g}], "
            f"{p['binary_search_steps']} x {p['max_iterations']} iterations, EOT {p['eot']}")


def _attack_readout(am: dict) -> str:
    r, a = am["readout"], am.get("attack_readout", am["readout"])
    if a == r:
        return f"read out at the calibrated iteration {r}"
    return (f"read out at iteration {a} to bound the cost, while the final images are scored at the calibrated "
            f"iteration {r}: a weaker attack than one through the evaluated purifier")


def _adaptive_table(board, m: dict, clf: str) -> str:
    """The adaptive rows: attacks made through DIP itself (BPDA + EOT), beside the paper's non-adaptive row."""
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "dip-adaptive"]
    if not found:
        return ""
    done = [r["metrics"] for r in found if isinstance(r["metrics"], dict)]
    if not done:
        return "\n\n### Adaptive attacks through DIP\n\nNot run yet: run `bench run`."
    done.sort(key=lambda am: (am["attack"], am["params"].get("eps", 0.0)))
    rows = []
    for t, h in m["headline"].items():
        rows.append([f"non-adaptive (made on {clf} alone): perturbed fake-wrong", t, prop(h["fake_wrong"]), "", ""])
    for am in done:
        for t, o in am["by_threshold"].items():
            rows.append([f"adaptive: {_attack_title(am)}", t, prop(o["recovered"]), prop(o["accuracy"]),
                         prop(am["fooled_bare"])])
    rows.append(["the paper (non-adaptive, perturbed fake-wrong)", "0.25", "95%", "", ""])
    first = done[0]
    cost = "; ".join(f"{_attack_title(am).split(',')[0]}: {am['seconds']:.0f} s, "
                     f"{am['purifications_per_image']:.0f} purifications per image" for am in done)
    return ("\n\n### Adaptive attacks through DIP (beyond the paper)\n\n"
            "The paper scores DIP only on examples made against the undefended classifier. Here PGD and CW-L2 are "
            "made through the full purifier: every forward pass purifies the batch with DIP "
            f"({_attack_readout(first)}); gradients pass through DIP by the straight-through estimate (BPDA), each "
            "the mean over EOT purifications with different DIP seeds. The attacked images are "
            f"{first['n_images']} fakes (distinct source images) that {clf} detects, none a calibration source. The "
            "results are stored as the suite stores adversarial images, then purified with the evaluation's seed "
            f"and scored. \"Recovered\": of the stored adversarial fakes that fool {clf} alone, the share DIP + "
            f"{clf} detects (the paper's fake-wrong row); \"all attacked\": DIP + {clf} on every attacked fake (the "
            "adaptive attack's own target is DIP + the classifier). Few attack iterations make a weak attack: "
            f"compare the settings with the non-adaptive attacks'. Cost on `{found[0].get('device', 'cpu')}`: "
            f"{cost}.\n\n"
            + tabulate(rows, ["Attack", "Threshold", f"Fooled fakes recovered: of those fooling {clf} alone",
                              f"Detected by DIP + {clf}: all attacked", f"Fool {clf} alone"], tablefmt="github"))
