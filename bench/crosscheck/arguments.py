"""The arguments of `bench crosscheck` (imported by the `bench` parser: nothing heavy here)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from bench.crosscheck.tolerances import Tolerances


def add_crosscheck_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `bench crosscheck`."""
    parser.add_argument("--attack", required=True, help="registered attack: fgsm, pgd, cw_l2")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="attack parameter (repeat), e.g. --param eps=0.02",
    )
    parser.add_argument(
        "--impl",
        action="append",
        default=None,
        metavar="IMPL",
        help="implementation (repeat; the first is the subject): native, art, foolbox, "
        "module.path:Name or path/to/file.py:Name (default: native, art, foolbox)",
    )
    parser.add_argument("--model", default="tiny",
                        help="architecture: tiny, resnet18, vgg16 (default tiny); with --suite, a model of the suite")
    parser.add_argument("--suite", default=None,
                        help="a suite (file or name) whose latest finished run in the store trained --model: the "
                             "cross-check runs on that detector and on the suite's attacked test fakes")
    parser.add_argument("--profile", default=None, help="with --suite: the profile of the run")
    parser.add_argument("--home", type=Path, default=None, help="with --suite: the bench home (default $BENCH_HOME)")
    parser.add_argument("--db", type=Path, default=None,
                        help="with --suite: the database (default HOME/results.sqlite)")
    parser.add_argument("--budgets", default=None, metavar="B1,B2,...",
                        help="budgets of the security-evaluation curves; a budgeted attack is run at each")
    parser.add_argument("--checkpoint", default=None, help="weights for --model (else a seeded random init)")
    parser.add_argument("--mean", type=float, nargs=3, default=(0.0, 0.0, 0.0), help="normalisation mean")
    parser.add_argument("--std", type=float, nargs=3, default=(1.0, 1.0, 1.0), help="normalisation std")
    parser.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--size", type=int, default=32, help="image size (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="image folder (real/ and fake/); default synthetic faces")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument(
        "--tol",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"tolerance (repeat): {', '.join(f.name for f in fields(Tolerances))}",
    )
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    parser.add_argument("--output", default=None, help="also write the report (markdown) to this file")
    parser.add_argument("--json", default=None, help="also write the flat records as JSON to this file")
