"""Leaderboard sections of the paper's DIP experiment: Tables III and IV, and Fig. 6 beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.attacks.registry import get_attack
from bench.dip.adaptive_point import ATTACK, TWIN, AdaptivePoint
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
    t3 += _recovery_table(board, m, clf) + _adaptive_table(board, m, clf)
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


def _attack_title(am: dict, payload: dict | None = None) -> str:
    if payload and payload.get("label"):
        return payload["label"]
    return AdaptivePoint(am["attack"], am["params"], int(am["restarts"])).title


def _budget(am: dict) -> float:
    """An adaptive point's budget (its attack's declared budget parameter; 0 for a minimum-norm attack)."""
    return get_attack(am["attack"]).budget_of(am["params"]) or 0.0


def _attack_readout(am: dict) -> str:
    r, a = am["readout"], am.get("attack_readout", am["readout"])
    if a == r:
        return f"read out at the calibrated iteration {r}, where the evaluation reads out"
    return (f"read out at iteration {a} to bound the cost, while the final images are scored at the calibrated "
            f"iteration {r}: a weaker attack than one through the evaluated purifier")


def _norms(am: dict) -> str:
    """Median L2 and L-inf of the stored perturbations."""
    if am.get("l2_median") is None:
        return "n/a"
    return f"{am['l2_median']:.2f} / {am['linf_median']:.3f}"


def dip_recovery(dip: dict, adaptive: list[tuple[str, dict]]) -> dict[str, dict]:
    """DIP's number per threshold: the lower of its recovery of the non-adaptive fooled fakes (the DIP cell's
    perturbed fake-wrong images) and of the adaptive ones (the adaptive attack whose fooled fakes DIP recovers
    least; `adaptive` holds (label, metrics) of the adaptive cells as given, not their twins). Cells with no fooled
    fake have no recovery and are left out. Per threshold: `dip` (a proportion), `which` ("non-adaptive" or the
    adaptive attack's label), `non_adaptive`, `adaptive` (None when no adaptive cell has one), `adaptive_label`."""
    out: dict[str, dict] = {}
    for t, h in dip["headline"].items():
        plain = h["fake_wrong"]
        found = [(label, m["by_threshold"][t]["recovered"]) for label, m in adaptive
                 if t in m["by_threshold"] and m["by_threshold"][t]["recovered"]["n"]]
        label, ad = min(found, key=lambda f: (f[1]["value"], -f[1]["n"])) if found else (None, None)
        use_adaptive = ad is not None and (not plain["n"] or ad["value"] < plain["value"])
        out[t] = {"dip": ad if use_adaptive else plain, "which": label if use_adaptive else "non-adaptive",
                  "non_adaptive": plain, "adaptive": ad, "adaptive_label": label}
    return out


def _adaptive_done(board) -> tuple[list[dict], list[dict]]:
    """The adaptive DIP section rows with results: (the attacks as given, their convergence twins)."""
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "dip-adaptive"
             and isinstance(r["metrics"], dict)]
    regular = [r for r in found if (r["payload"].get("role") or ATTACK) == ATTACK]
    return regular, [r for r in found if r["payload"].get("role") == TWIN]


def _recovery_table(board, m: dict, clf: str) -> str:
    """Table III's headline: per threshold, the lower of DIP's non-adaptive and adaptive recovery."""
    regular, _ = _adaptive_done(board)
    if not regular:
        return ""
    rec = dip_recovery(m, [(_attack_title(r["metrics"], r["payload"]), r["metrics"]) for r in regular])
    rows = [[t, prop(o["dip"]), o["which"], prop(o["non_adaptive"]),
             prop(o["adaptive"]) if o["adaptive"] else "n/a (no adaptive example fooled the classifier alone)",
             o["adaptive_label"] or ""] for t, o in rec.items()]
    return ("\n\n### DIP's recovery of fooled fakes: the lower of non-adaptive and adaptive\n\n"
            f"Of the perturbed fakes that fool {clf} alone, the share DIP + {clf} detects. DIP's number is the lower "
            "of the two (an adversary who knows DIP picks the stronger attack): the non-adaptive examples (made on "
            "the classifier alone, the perturbed fake-wrong images of Table IV) and the adaptive ones (made "
            "through DIP; the attack whose fooled fakes DIP recovers least).\n\n"
            + tabulate(rows, ["Threshold", "DIP's recovery", "Which", "Non-adaptive", "Adaptive (strongest)",
                              "Adaptive attack"], tablefmt="github"))


def _adaptive_table(board, m: dict, clf: str) -> str:
    """The adaptive rows: attacks made through DIP itself (BPDA + EOT), beside the paper's non-adaptive row, and
    each one's convergence twin (twice the steps)."""
    found = [r for r in board.results.sections.to_dict("records") if r["kind"] == "dip-adaptive"]
    if not found:
        return ""
    regular, twins = _adaptive_done(board)
    if not regular:
        return "\n\n### Adaptive attacks through DIP\n\nNot run yet: run `bench run`."
    order = {r["key"]: n for n, r in enumerate(sorted(regular, key=lambda r: (r["metrics"]["attack"],
                                                                                _budget(r["metrics"]))))}
    done = sorted(regular + twins, key=lambda r: (order.get(r["key"], order.get(r["payload"].get("of"), 0)),
                                                  r["payload"].get("role") == TWIN))
    rows = []
    for t, h in m["headline"].items():
        rows.append([f"non-adaptive (made on {clf} alone): perturbed fake-wrong", t, prop(h["fake_wrong"]), "", "",
                     "", ""])
    for r in done:
        am = r["metrics"]
        for t, o in am["by_threshold"].items():
            rows.append([f"adaptive: {_attack_title(am, r['payload'])}", t, prop(o["recovered"]), prop(o["accuracy"]),
                         prop(am["fooled_bare"]), prop(am["unchanged"]) if am.get("unchanged") else "n/a",
                         _norms(am)])
    rows.append(["the paper (non-adaptive, perturbed fake-wrong)", "0.25", "95%", "", "", "", ""])
    first = regular[0]["metrics"]
    cost = "; ".join(f"{_attack_title(r['metrics'], r['payload']).split(',')[0]}"
                     f"{' twin' if r['payload'].get('role') == TWIN else ''}: {r['metrics']['seconds']:.0f} s, "
                     f"{r['metrics']['purifications_per_image']:.0f} purifications per image" for r in done)
    total = sum(r["metrics"]["seconds"] for r in done)
    twin_note = (" Each attack's convergence twin runs it with more steps on the same images (the first of them when "
                 "fewer); the sanity check `not-converged` fires when the twin turns more than 5 points more of them "
                 "real through DIP.") if twins else ""
    return ("\n\n### Adaptive attacks through DIP (beyond the paper)\n\n"
            "The paper scores DIP only on examples made against the undefended classifier. Here PGD and CW-L2 are "
            "made through the full purifier: every forward pass purifies the batch with DIP "
            f"({_attack_readout(first)}); gradients pass through DIP by the straight-through estimate (BPDA), each "
            "the mean over EOT purifications with different DIP seeds. The attacked images are "
            f"{first['n_images']} fakes (distinct source images) that {clf} detects, none a calibration source. The "
            "results are stored as the suite stores adversarial images, then purified with the evaluation's seed "
            f"and scored. \"Recovered\": of the stored adversarial fakes that fool {clf} alone, the share DIP + "
            f"{clf} detects (the paper's fake-wrong row); \"all attacked\": DIP + {clf} on every attacked fake (the "
            "adaptive attack's own target is DIP + the classifier); \"unchanged\": returned unperturbed (8-bit)."
            f"{twin_note} Cost on `{found[0].get('device', 'cpu')}`: {total:.0f} s in all ({cost}).\n\n"
            + tabulate(rows, ["Attack", "Threshold", f"Fooled fakes recovered: of those fooling {clf} alone",
                              f"Detected by DIP + {clf}: all attacked", f"Fool {clf} alone", "Unchanged",
                              "Median L2 / Linf (stored)"],
                       tablefmt="github"))
