"""A trained detector from a suite's store, and the images the suite attacks, for `bench crosscheck --suite`.

The suite and plan are those of the latest finished run in the store (`bench.results.query.stored_suite`);
the detector is the checkpoint that run trained (or the user's checkpoint it names) under the home; the
images are the first `n` test fakes the suite attacks, from the suite's own data and split.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from bench.cells.artifacts import verify_files
from bench.cells.context import RunContext
from bench.data.sources import load_data
from bench.errors import BenchError
from bench.models.detector import Detector
from bench.results.query import stored_suite
from bench.results.store import ResultStore
from bench.settings import default_home


def suite_name(suite: str) -> str:
    """A suite's name: read from its file when it is one, else the argument itself."""
    path = Path(suite)
    if path.is_file():
        name = (yaml.safe_load(path.read_text()) or {}).get("name")
        if not isinstance(name, str) or not name:
            raise BenchError(f"{path}: name", "the suite has no name")
        return name
    return suite


def stored_detector(suite: str, profile: str | None, model: str, home: Path | None, db: Path | None,
                    device: torch.device, n: int) -> tuple[Detector, torch.Tensor, torch.Tensor]:
    """(detector, images, labels): `model` as the suite's latest run trained it, and its first `n` attacked fakes."""
    if n < 1:
        raise BenchError("--n", f"expected at least 1 image, got {n}")
    home = Path(home or default_home())
    store = ResultStore(db or home / "results.sqlite", readonly=True)
    try:
        ls, plan = stored_suite(store, suite_name(suite), profile)
        if model not in plan.models:
            raise BenchError("--model", f"the suite {ls.suite.name} has no model {model!r}; its models: "
                             f"{', '.join(sorted(plan.models))}")
        stored = store.get(plan.models[model].key)
    finally:
        store.close()
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    ctx = RunContext(ls, train, test, plan, home, device, quiet=True)
    mc = plan.models[model]
    if not mc.model.config.checkpoint and not ctx.checkpoint_path(mc).is_file():
        raise BenchError("--model", f"no checkpoint of {model} at {ctx.checkpoint_path(mc)}: run the suite first")
    if stored is None:
        raise BenchError("--model", f"the store holds no trained {model}: run the suite first")
    if not verify_files(mc, ctx, stored.files, repair=False):  # the file is the one the store recorded
        raise BenchError(str(ctx.checkpoint_path(mc)), f"not the checkpoint the suite's run stored for {model} "
                                                       "(damaged or replaced): rerun `bench run` to train it again")
    detector = ctx.detector(model)
    data = ctx.attacked
    data = data.subset(range(min(n, len(data))))
    return detector, data.images, data.labels
