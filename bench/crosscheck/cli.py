"""`bench crosscheck`: one attack from several implementations, same detector, images and settings.

The command line of `bench.crosscheck.compare`: the arguments, the detector and images they name, the
report printed and written.

Exit codes of `main_crosscheck`: 0 every verdict passes, 1 a verdict fails (the implementations
disagree), 2 bad input, including an implementation that broke its contract (raised, returned the
wrong shape, left [0, 1]); the other implementations' results are still reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import yaml

from bench.crosscheck.arguments import add_crosscheck_arguments
from bench.crosscheck.compare import (
    DEFAULT_IMPLEMENTATIONS,
    Tolerances,
    crosscheck,
    crosscheck_records,
    validate_params,
)
from bench.crosscheck.stored import stored_detector
from bench.data.dataset import ImageSet
from bench.data.images import load_image_folder
from bench.data.synthetic import generate_synthetic_faces
from bench.errors import BenchError
from bench.models.checkpoint import load_saved_detector, load_user_checkpoint
from bench.models.detector import Detector, ModelSpec
from bench.models.device import resolve_device
from bench.models.registry import create_model


def _key_values(items: list[str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(where, f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def parse_tolerances(items: list[str]) -> Tolerances:
    values = _key_values(items, "--tol")
    known = {f.name for f in fields(Tolerances)}
    for k, v in values.items():
        if k not in known:
            raise BenchError(f"--tol {k}", f"unknown tolerance; known: {', '.join(sorted(known))}")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise BenchError(f"--tol {k}", f"expected a non-negative number, got {v!r}")
    return Tolerances(**{k: float(v) for k, v in values.items()})


def _load_detector(args: argparse.Namespace, device: torch.device) -> Detector:
    if args.checkpoint:
        path = Path(args.checkpoint)
        det = None
        if path.suffix == ".safetensors" and path.is_file():
            try:
                det = load_saved_detector(path)
            except BenchError:
                det = None
        if det is None:
            spec = ModelSpec(args.model, args.size, tuple(args.mean), tuple(args.std))
            det = load_user_checkpoint(path, spec, where="--checkpoint")
    else:
        torch.manual_seed(args.seed)
        det = create_model(args.model, args.size, tuple(args.mean), tuple(args.std), where="--model")
    return det.to(device).eval()


def _load_images(args: argparse.Namespace, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if args.n < 1:
        raise BenchError("--n", f"expected at least 1 image, got {args.n}")
    if args.data:
        data = load_image_folder(Path(args.data), size)
        if len(data) == 0:
            raise BenchError("--data", f"no images found under {args.data}")
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.n]
        data = data.subset(order.sort().values)
    else:
        data = ImageSet.from_uint8(*generate_synthetic_faces(args.n, size, args.seed))
    return data.images, data.labels


def parse_budgets(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BenchError("--budgets", f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise BenchError("--budgets", f"expected positive numbers, got {text!r}")
    return sorted(set(values))


def main_crosscheck(args: argparse.Namespace) -> int:
    """Run `bench crosscheck` from parsed arguments; print the report; return the exit code."""
    try:
        device = resolve_device(args.device)
        impls = list(args.impl or DEFAULT_IMPLEMENTATIONS)
        params = validate_params(args.attack, _key_values(args.param, "--param"))
        tol = parse_tolerances(args.tol)
        budgets = parse_budgets(args.budgets)
        if args.suite:
            detector, x, y = stored_detector(args.suite, args.profile, args.model, args.home, args.db, device, args.n)
        else:
            detector = _load_detector(args, device)
            x, y = _load_images(args, detector.spec.input_size)
        report = crosscheck(detector, x, y, args.attack, params, impls, tol, seed=args.seed, budgets=budgets)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.to_markdown() if args.format == "markdown" else report.to_text())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report.to_markdown() + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(crosscheck_records(report), indent=1) + "\n")
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.crosscheck ...` (the same as `bench crosscheck ...`)."""
    parser = argparse.ArgumentParser(prog="bench crosscheck", description=__doc__.splitlines()[0])
    add_crosscheck_arguments(parser)
    return main_crosscheck(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
