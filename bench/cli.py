"""The `bench` command line: run, validate, list, report, export, merge, data synth, crosscheck."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

# What builds the parser, reports errors and runs the light commands is imported here; torch, the toolkits and
# pandas are imported by the heavy commands' handlers only, so `bench --help`, `bench list` and `bench validate`
# start at once (benchmarks/cli_startup.py; tests/test_cli_startup.py checks that `import bench.cli` imports no
# torch; tests/test_import_graph.py that every function-level import defers something heavy).
from bench.attacks.registry import list_attacks
from bench.crosscheck.arguments import add_crosscheck_arguments
from bench.data.synthetic import write_image_folder
from bench.defenses.registry import list_defenses
from bench.errors import BenchError
from bench.models.registry import list_models
from bench.results.atomic import remove_stale_temporaries, writable_or_error
from bench.results.integrity import damaged_database, is_damage
from bench.results.merge import merge_stores
from bench.results.store import ResultStore
from bench.running.faults import environment_error
from bench.running.lock import home_lock
from bench.settings import configure_matplotlib, default_home
from bench.suite.load import load_suite
from bench.suite.validate import check_leaderboard_dir, read_suite_file


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
    run.add_argument("--executor", default="serial", choices=["serial", "ray"],
                     help="serial (default): cells one by one in this process; ray: cells as Ray tasks "
                          "(pip install -e '.[ray]'), on a local Ray or the cluster at --address")
    run.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                     help="with --executor ray: join this Ray cluster (default: start a local one)")
    run.add_argument("--num-gpus-per-cell", type=float, default=None, metavar="G",
                     help="with --executor ray: GPUs each cell asks for (fractions share a GPU; default 1 when "
                          "the device is cuda, else 0)")
    run.add_argument("--cpus-per-cell", type=int, default=1, metavar="N",
                     help="with --executor ray: CPUs (and torch threads) each cell asks for (default 1); a serial "
                          "run on N threads gives the same numbers as cells on N threads")
    _add_common(run)

    merge = sub.add_parser("merge", help="merge results databases (e.g. from sharded runs) into one")
    merge.add_argument("target", type=Path, help="the database to merge into (created if absent)")
    merge.add_argument("sources", type=Path, nargs="+")

    val = sub.add_parser("validate", help="check a suite file without running it")
    val.add_argument("suite", type=Path)
    val.add_argument("--profile", default=None)
    val.add_argument("--data", type=Path, default=None,
                     help="check this image folder or CSV manifest instead of the suite's data (read, never written)")
    val.add_argument("--load-plugins", action="store_true",
                     help="also import user plug-ins (file.py:Class, module:Class) and check them: runs their code")

    sub.add_parser("list", help="list registered models, attacks (with backends) and defenses")

    rep = sub.add_parser("report", help="render a suite's leaderboard from the database alone")
    rep.add_argument("suite", type=Path, help="the suite file (only its name is read) or the suite's name")
    rep.add_argument("--profile", default=None)
    rep.add_argument("--out", type=Path, default=None)
    _add_common(rep)

    exp = sub.add_parser("export", help="export a suite's results: one row per cell, and per-model records")
    exp.add_argument("suite", type=Path, help="the suite file (only its name is read) or the suite's name")
    exp.add_argument("--profile", default=None)
    exp.add_argument("--format", default="csv", choices=["csv", "json", "parquet"])
    exp.add_argument("--out", type=Path, default=None, help="output file (default <tag>-cells.<format>)")
    exp.add_argument("--predictions", action="store_true", help="also write the per-image predictions")
    _add_common(exp)

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

    cc = sub.add_parser("crosscheck", help="run one attack from several implementations and compare them")
    add_crosscheck_arguments(cc)
    return parser


def _data_override(path: Path | None) -> dict | None:
    if path is None:
        return None
    p = path.resolve()
    if p.suffix.lower() == ".csv":
        return {"data": {"source": "csv", "path": str(p)}}
    return {"data": {"source": "folder", "path": str(p)}}


def cmd_run(args) -> int:
    from bench.models.device import resolve_device  # lazy (see the imports above)
    from bench.report.leaderboard import write_leaderboard  # lazy (see the imports above)
    from bench.results.query import results_from  # lazy (see the imports above)
    from bench.running.executor import RunStats  # lazy (see the imports above)
    from bench.running.runner import prepare, run_suite  # lazy (see the imports above)

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    shard = _parse_shard(args.shard)
    executor = _executor(args)
    ls = load_suite(args.suite, args.profile, _data_override(args.data))
    home = args.home or default_home()
    ctx = prepare(ls, home=home, device=device, quiet=args.quiet)  # validates inputs before anything is written
    writable_or_error(home, "--home")  # a read-only home or leaderboard folder: refused before any work
    if shard is None:
        writable_or_error(Path(args.out or ls.suite.report.leaderboard_dir), "the leaderboard folder (--out)")
    db = args.db or home / "results.sqlite"
    _check_database_file(db)  # a folder, a damaged or read-only file: refused before the home is written
    stats = RunStats()
    with home_lock(home), _signals_interrupt():  # a second run on this home waits here, then reuses the cells
        _clean_temporaries(home, Path(args.out or ls.suite.report.leaderboard_dir))
        store = ResultStore(db)
        try:
            try:
                run_suite(ctx, store, force=args.force, shard=shard, stats=stats, executor=executor)
                path = write_leaderboard(results_from(store, ls, ctx.plan), args.out) if shard is None else None
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP; a leaderboard half-written is not kept
                name = getattr(exc, "signal_name", "Ctrl-C")
                print(f"interrupted by {name}: {stats.computed} cells were saved (the run is marked interrupted "
                      "unless it had finished); rerun to continue", file=sys.stderr)
                return getattr(exc, "exit_code", 130)
        finally:
            store.close()
    if path is None:
        print(f"shard {args.shard}: {stats.computed} cells computed, {stats.reused} from the store, "
              f"{time.perf_counter() - t0:.1f} s; merge the shards with `bench merge`")
        return 0
    print(f"{stats.computed} cells computed, {stats.reused} from the store, {time.perf_counter() - t0:.1f} s; "
          f"leaderboard: {path}")
    return 0


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a batch scheduler, `docker stop`, a closed terminal), handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum


def _signals_interrupt():
    """For the block: SIGTERM and SIGHUP raise `SignalInterrupt` in the main thread (the run stops as on
    Ctrl-C: the cell in flight is lost, the run is marked interrupted, the message says so)."""

    @contextlib.contextmanager
    def handlers():
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signum, frame):
            raise SignalInterrupt(signum)

        wanted = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
        before = {s: signal.signal(s, interrupt) for s in wanted}
        try:
            yield
        finally:
            for s, h in before.items():
                signal.signal(s, h)

    return handlers()


def _clean_temporaries(home: Path, leaderboard: Path) -> None:
    """The temporary files a killed process left: all of them in the home (this run holds its lock), those
    older than 10 minutes in the leaderboard folder (a report may be writing there now)."""
    for folder in (home, home / "checkpoints", home / "adversarial"):
        remove_stale_temporaries(folder)
    remove_stale_temporaries(leaderboard, older_than_s=600)


def _check_database_file(db: Path) -> None:
    """What `bench run` will write its results to: a file in a writable folder, and a store that verifies."""
    if db.is_dir():
        raise BenchError(str(db), "is a folder, not a results database file (--db names a file)")
    writable_or_error(db.parent, "the results database's folder (--db)")
    if db.is_file():
        if not os.access(db, os.W_OK):
            raise BenchError(str(db), "the results database is read-only (no permission to write it); choose "
                                      "another --db or --home, or `bench report` it as it is")
        if db.stat().st_size > 0:
            ResultStore(db, readonly=True).close()  # a damaged store: refused before anything is written


def _executor(args):
    """The executor `--executor` names (None: run_suite's default, the serial one)."""
    if args.executor == "serial":
        if args.address is not None or args.num_gpus_per_cell is not None or args.cpus_per_cell != 1:
            raise BenchError("--executor", "--address, --num-gpus-per-cell and --cpus-per-cell need --executor ray")
        return None
    try:
        # lazy: Ray is an optional extra, imported only when asked for
        from bench.distributed.ray_executor import RayExecutor  # lazy (see the imports above)
    except ImportError as exc:
        raise BenchError("--executor ray", f"Ray is not installed ({exc}); pip install -e '.[ray]'") from None
    return RayExecutor(address=args.address, num_gpus_per_cell=args.num_gpus_per_cell,
                       cpus_per_cell=args.cpus_per_cell, quiet=args.quiet, force=args.force)


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
    for src, cells, runs in merge_stores(args.target, args.sources):  # all or nothing
        print(f"{src}: {cells} cells, {runs} runs merged into {args.target}")
    return 0


def cmd_validate(args) -> int:
    ls = load_suite(args.suite, args.profile, _data_override(args.data), load_plugins=args.load_plugins,
                    other_profiles_plugins=args.load_plugins)
    if ls.suite.data.source != "synthetic-faces":  # the user's images: read them all, as a run would
        from bench.data.sources import load_data  # lazy (see the imports above)

        train, test = load_data(ls.suite.data, ls.suite.seed, ls.base_dir)
        print(f"{ls.suite.data.path}: {len(train)} training and {len(test)} test images")
    plugins = "" if args.load_plugins else "; plug-ins checked by name only (--load-plugins imports them)"
    print(f"{args.suite}: valid ({len(ls.models)} models, {len(ls.attacks)} attack settings, "
          f"{len(ls.suite.defenses)} defenses, {1 + len(ls.suite.profiles)} profile(s) checked{plugins})")
    return 0


def cmd_list(args) -> int:
    print("models:  ", ", ".join(list_models()))
    print("attacks:")
    for a in list_attacks():
        budget = f"budget {a.budget}" if a.budget else "no budget"
        print(f"  {a.name:8s} {a.title:8s} {a.family}, {a.norm}, {budget}; backends: {', '.join(sorted(a.backends))}")
    print("defenses:", ", ".join(list_defenses()))
    return 0


def _suite_name(path: Path) -> str:
    """A suite's name: from its file when it exists (only the name is read), else the argument itself."""
    if path.is_file():
        name = read_suite_file(path).get("name")
        if not isinstance(name, str) or not name:
            raise BenchError(f"{path}: name", "the suite has no name")
        return name
    if path.suffix in (".yaml", ".yml") or "/" in str(path):
        raise BenchError(str(path), "suite file does not exist")
    return str(path)


def _read_store(args) -> ResultStore:
    """The store a read-only command reads: opened read-only, never created (nor its home)."""
    return ResultStore(args.db or (args.home or default_home()) / "results.sqlite", readonly=True)


def cmd_report(args) -> int:
    from bench.report.leaderboard import write_leaderboard  # lazy (see the imports above)
    from bench.results.query import load_results  # lazy (see the imports above)

    store = _read_store(args)
    try:
        results = load_results(store, _suite_name(args.suite), args.profile)
        if args.out is None:  # the stored suite's folder: below the working directory, as validate checks

            check_leaderboard_dir(results.ls)
        path = write_leaderboard(results, args.out)
    finally:
        store.close()
    print(f"leaderboard: {path}")
    return 0


def cmd_export(args) -> int:
    from bench.results.export import export  # lazy (see the imports above)
    from bench.results.query import load_results  # lazy (see the imports above)

    store = _read_store(args)
    try:
        results = load_results(store, _suite_name(args.suite), args.profile)
        out = Path(args.out or f"{results.ls.tag}-cells.{args.format}")
        beside = (f"{out.stem}-predictions.{args.format}", f"{out.stem}-models.json")
        for path in (out, *(out.with_name(n) for n in beside)):
            if path.is_dir():
                raise BenchError(str(path), "is a folder: --out names the file to write (its -predictions and "
                                            "-models files go beside it)")
        writable_or_error(out.parent, "the export's folder (--out)")
        paths = export(results, args.format, out, predictions=args.predictions)
    finally:
        store.close()
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_data(args) -> int:
    from bench.data.faces import print_report  # lazy (see the imports above)

    if args.data_command == "faces":
        return print_report(args)
    n = write_image_folder(args.out, args.n, args.size, args.seed)
    print(f"wrote {n} images to {args.out}/real and {args.out}/fake")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "validate": cmd_validate, "list": cmd_list, "report": cmd_report,
                "export": cmd_export, "data": cmd_data, "merge": cmd_merge}
    try:
        _matplotlib_cache(args)
        if args.command == "crosscheck":
            from bench.crosscheck.cli import main_crosscheck  # lazy (see the imports above)

            return main_crosscheck(args)
        return handlers[args.command](args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except UnicodeEncodeError as exc:  # a stored text damaged into bytes that are not UTF-8, used as a key
        if "surrogates" not in str(exc):
            raise

        print(f"error: {damaged_database(_db_path(args), 'a stored text is not UTF-8')}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        err = environment_error(exc, _db_path(args))
        if err is None and isinstance(exc, sqlite3.DatabaseError):
            err = damaged_database(_db_path(args), str(exc)) if is_damage(exc) else None
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def _matplotlib_cache(args) -> None:
    """matplotlib's cache under the home for the commands that write the home (run, crosscheck, data); the
    others write no home, so theirs goes under the home only when it exists and is writable, else in a
    temporary folder removed at exit."""
    home = getattr(args, "home", None) or default_home()
    if args.command in ("run", "crosscheck", "data") or os.access(home, os.W_OK):
        configure_matplotlib(home)
    elif "MPLCONFIGDIR" not in os.environ:
        tmp = tempfile.mkdtemp(prefix="bench-mpl-")
        atexit.register(shutil.rmtree, tmp, True)
        os.environ["MPLCONFIGDIR"] = tmp


def _db_path(args) -> Path | None:
    if getattr(args, "db", None):
        return args.db
    if getattr(args, "command", None) == "merge":
        return args.target
    home = getattr(args, "home", None) or default_home()
    return home / "results.sqlite"


if __name__ == "__main__":
    sys.exit(main())
