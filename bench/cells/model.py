"""The model cell: train a detector by its recipe (with its training-time defense) and save the checkpoint
under the home, or record a user's checkpoint."""

from __future__ import annotations

from bench.cells.context import RunContext
from bench.cells.registry import Record, computes
from bench.defenses.registry import create_defense
from bench.models.checkpoint import load_saved_detector, read_checkpoint_meta, save_detector
from bench.models.registry import create_model
from bench.models.training import train_detector
from bench.suite.plan import ModelCell


def is_done(mc: ModelCell, ctx: RunContext) -> bool:
    """A trained model is done only while its checkpoint file is there too."""
    return bool(mc.model.config.checkpoint) or ctx.checkpoint_path(mc).is_file()


@computes("model", done=is_done)
def train_model(mc: ModelCell, ctx: RunContext) -> Record:
    cfg = mc.model.config
    if cfg.checkpoint:
        ctx.detector(mc.model.name)  # loads and checks the user's checkpoint
        return Record({"source": "checkpoint", "path": cfg.checkpoint})
    path = ctx.checkpoint_path(mc)
    if path.is_file():  # the checkpoint outlived its store row: record it again, do not retrain
        ctx.remember(mc.model.name, load_saved_detector(path))
        return Record({"source": "trained", "losses": read_checkpoint_meta(path).get("losses"), "path": str(path)})
    spec = ctx.spec(mc)
    where = f"models.{mc.model.base}"
    det = create_model(cfg.arch, spec.input_size, spec.mean, spec.std, pretrained=cfg.pretrained, where=where)
    if cfg.init_from:
        det.load_state_dict(ctx.detector(cfg.init_from).state_dict())
    det = det.to(ctx.device)
    defense = None
    if mc.model.training_defense:
        dname, params = mc.model.training_defense
        defense = create_defense(dname, params, where=f"{where}.defense.{dname}", base_dir=ctx.ls.base_dir)
    losses = train_detector(det, ctx.train_set, cfg.recipe, seed=int(mc.key[:8], 16), defense=defense,
                            quiet=ctx.quiet, desc=f"train {mc.model.name}", where=f"models.{mc.model.name}")
    save_detector(det, path, {"key": mc.key, "losses": losses})
    ctx.remember(mc.model.name, det)
    return Record({"source": "trained", "losses": losses, "path": str(path)})
