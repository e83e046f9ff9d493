"""The `bench` command line: run, validate, list, report, data synth, crosscheck."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.errors import BenchError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=None,
                   help="checkpoints, adversarial examples and the results DB (default $BENCH_HOME or .bench)")
    p.add_argument("--db", type=Path, default=None, help="results database (default HOME/results.sqlite)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Robustness benchmark for deepfake detectors.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite (finished cells come from the store) and write its leaderboard")
    run.add_argument("suite", type=Path)
    run.add_argument("--profile", default=None, help="a named profile of the suite (e.g. quick)")
    run.add_argument("--data", type=Path, default=None, help="use this image folder (real/, fake/) or CSV manifest")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--force", action="store_true", help="recompute every cell, ignoring stored results")
    run.add_argument("--out", type=Path, default=None, help="leaderboard folder (default: the suite's report dir)")
    run.add_argument("--shard", default=None, metavar="K/N",
                     help="compute only shard K of N (0-based) of the cells; merge the shards' databases with "
                          "`bench merge`, then `bench report`")
    _add_common(run)

    merge = sub.add_parser("merge", help="merge results databases (e.g. from sharded runs) into one")
    merge.add_argument("target", type=Path, help="the database to merge into (created if absent)")
    merge.add_argument("sources", type=Path, nargs="+")

    val = sub.add_parser("validate", help="check a suite file without running it")
    val.add_argument("suite", type=Path)
    val.add_argument("--profile", default=None)

    sub.add_parser("list", help="list registered models, attacks (with backends) and defenses")

    rep = sub.add_parser("report", help="render a suite's leaderboard from the database")
    rep.add_argument("suite", type=Path)
    rep.add_argument("--profile", default=None)
    rep.add_argument("--data", type=Path, default=None)
    rep.add_argument("--out", type=Path, default=None)
    _add_common(rep)

    data = sub.add_parser("data", help="data utilities")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the synthetic-faces data as an image folder")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--n", type=int, default=2000)
    synth.add_argument("--size", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    faces = dsub.add_parser("faces", help="extract face crops from videos and images (real/ and fake/, or a CSV)")
    faces.add_argument("src", type=Path, help="a folder with real/ and fake/ below it, or a CSV (path,label[,group,"
                       "subset])")
    faces.add_argument("--out", type=Path, required=True, help="where the crops and manifest.csv go")
    faces.add_argument("--frames", type=int, default=32, help="frames sampled evenly per video (default 32)")
    faces.add_argument("--margin", type=float, default=1.3, help="crop side / face box side (default 1.3)")
    faces.add_argument("--size", type=int, default=128, help="square crop size in px (default 128)")
    faces.add_argument("--quiet", action="store_true", help="no progress bar")

    try:
        from bench.crosscheck import add_crosscheck_arguments

        cc = sub.add_parser("crosscheck", help="run one attack from several implementations and compare them")
        add_crosscheck_arguments(cc)
    except ImportError:  # pragma: no cover - optional until the module exists
        pass
    return parser


def _data_override(path: Path | None) -> dict | None:
    if path is None:
        return None
    p = path.resolve()
    if p.suffix.lower() == ".csv":
        return {"data": {"source": "csv", "path": str(p)}}
    return {"data": {"source": "folder", "path": str(p)}}


def _home_and_store(args):
    from bench.runner import default_home
    from bench.store import ResultStore

    home = args.home or default_home()
    return home, ResultStore(args.db or home / "results.sqlite")


def cmd_run(args) -> int:
    from bench.device import resolve_device
    from bench.report.leaderboard import write_leaderboard
    from bench.runner import Runner, default_home
    from bench.suite.load import load_suite

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    ls = load_suite(args.suite, args.profile, _data_override(args.data))
    home = args.home or default_home()
    runner = Runner(ls, home=home, device=device, quiet=args.quiet, force=args.force,
                    shard=_parse_shard(args.shard))  # validates inputs before anything is written
    _, store = _home_and_store(args)
    try:
        try:
            stats = runner.run(store)
        except KeyboardInterrupt:
            print(f"interrupted: {runner.stats.computed} cells were saved; rerun to continue", file=sys.stderr)
            return 130
        path = write_leaderboard(ls, runner.plan, store, args.out) if runner.shard is None else None
    finally:
        store.close()
    if path is None:
        print(f"shard {args.shard}: {stats.computed} cells computed, {stats.reused} from the store, "
              f"{time.perf_counter() - t0:.1f} s; merge the shards with `bench merge`")
        return 0
    print(f"{stats.computed} cells computed, {stats.reused} from the store, {time.perf_counter() - t0:.1f} s; "
          f"leaderboard: {path}")
    return 0


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise BenchError("--shard", f"expected K/N with integers, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise BenchError("--shard", f"expected 0 <= K < N, got {text!r}")
    return k, n


def cmd_merge(args) -> int:
    from bench.store import ResultStore

    for src in args.sources:
        if not src.is_file():
            raise BenchError(str(src), "database file does not exist")
    store = ResultStore(args.target)
    try:
        for src in args.sources:
            cells, runs = store.merge_from(src)
            print(f"{src}: {cells} cells, {runs} runs merged into {args.target}")
    finally:
        store.close()
    return 0


def cmd_validate(args) -> int:
    from bench.suite.load import load_suite

    ls = load_suite(args.suite, args.profile)
    print(f"{args.suite}: valid ({len(ls.models)} models, {len(ls.attacks)} attack settings, "
          f"{len(ls.suite.defenses)} defenses)")
    return 0


def cmd_list(args) -> int:
    from bench.attacks.registry import list_attacks
    from bench.models.registry import list_models

    print("models:  ", ", ".join(list_models()))
    print("attacks:")
    for a in list_attacks():
        print(f"  {a.name:8s} {a.title:8s} backends: {', '.join(sorted(a.backends))}")
    try:
        from bench.defenses.registry import list_defenses

        print("defenses:", ", ".join(list_defenses()))
    except ImportError:  # pragma: no cover
        pass
    return 0


def cmd_report(args) -> int:
    from bench.data.sources import load_data
    from bench.report.leaderboard import write_leaderboard
    from bench.suite.load import load_suite
    from bench.suite.plan import build_plan

    ls = load_suite(args.suite, args.profile, _data_override(args.data))
    train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
    _, store = _home_and_store(args)
    try:
        path = write_leaderboard(ls, build_plan(ls, train, test), store, args.out)
    finally:
        store.close()
    print(f"leaderboard: {path}")
    return 0


def cmd_data(args) -> int:
    if args.data_command == "faces":
        from bench.data.faces import print_report

        return print_report(args)
    from bench.data.synthetic import write_image_folder

    n = write_image_folder(args.out, args.n, args.size, args.seed)
    print(f"wrote {n} images to {args.out}/real and {args.out}/fake")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "validate": cmd_validate, "list": cmd_list, "report": cmd_report,
                "data": cmd_data, "merge": cmd_merge}
    try:
        if args.command == "crosscheck":
            from bench.crosscheck import main_crosscheck

            return main_crosscheck(args)
        return handlers[args.command](args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
