"""``onyx``: the verbs of Onyx 1.0 (run_pipeline.py), each a thin layer over the Dagster instance.

    onyx run --input VIDEO --output DATA_ROOT --mode M --scene S --quality Q [--video auto|normal|360]
             [--interval S] [--batch KEY] [--until STEP] [--dry-run]
    onyx add  (the options of run)   registers the batch without running it
    onyx resume BATCH [--from-step INGEST|SFM|RECONSTRUCTION|SEGFORMER] [--until STEP] [--dry-run]
    onyx fork BATCH --mode M --quality Q [--dry-run]
        (run, resume, fork: --set STEP.SETTING=VALUE, a step's setting for this run, as the launchpad names it)
    onyx list [DATA_ROOT] [--json]
    onyx view BATCH [--recipe R] [--serve [--port P]] [--no-open]
    onyx export BATCH -o FILE.zip
    onyx import-batch FILE.zip [-o DATA_ROOT] [--as NEWKEY]
    onyx purge BATCH [--keep-output]
    onyx purge-all DATA_ROOT [--yes]
    onyx install [--build] [...]      (= python -m onyx_dagster.install install ...)
    onyx ui [DATA_ROOT]               (dagster dev on the same instance and data root)

BATCH is a batch key (the data root from --data-root, else ONYX_DATA, else ./onyx-data)
or the path of a batch folder. The Dagster instance is DAGSTER_HOME if set, else
``dagster-home/`` beside the data root. Exit codes: 0 done, 1 a step failed, 2 refused (bad input or
state; nothing written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from ..batches import BatchError
from ..operations.context import RECIPE_ASSETS, STEPS, Onyx, resolve_data_root
from ..operations.errors import OperationError, RunFailed
from ..settings import OnyxSettingsWarning, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(message: str) -> None:
    print(f"onyx: {message}", file=sys.stderr)


def _note(message: str) -> None:
    _err(f"note: {message}")


def _onyx(data_root: Path) -> Onyx:
    """The verbs' Onyx, printing its notes on stderr."""
    return Onyx(data_root, on_note=_note)


def _batch_arg(value: str, data_root: str | None) -> tuple[Path, str]:
    """BATCH as a key (data root from the option/env) or as the path of a batch folder in it."""
    from ..operations.batch_paths import batch_argument

    return batch_argument(value, data_root)


def _progress_display(stream):
    from .progress import ProgressDisplay

    return ProgressDisplay(stream)


def _ui_hint(onyx: Onyx) -> str:
    return (f"Dagster UI on these runs: onyx ui {onyx.data_root}   "
            f"(= DAGSTER_HOME={onyx.home} ONYX_DATA={onyx.data_root} dagster dev -m onyx_dagster.definitions)")


def _print_plan(plan, header: str) -> None:
    print(header)
    lines = plan.describe()
    if not lines:
        print("  nothing to do")
    for line in lines:
        print(f"  {line}")


def _execute(onyx: Onyx, args, runner, key: str) -> int:
    """Run with progress lines; unless --verbose, the tools' raw console output (COLMAP's
    log, ffmpeg) goes to <batch>/logs/console.log instead of the terminal."""
    from .progress import ConsoleRedirect

    redirect = ConsoleRedirect(onyx.layout(key).logs / "console.log", enabled=not args.verbose)
    display = None if args.quiet else _progress_display(redirect.terminal)
    kwargs = {"verbose": args.verbose}

    def on_run_start(planned, run_id):
        redirect.start()
        if display is not None:
            display.run_started(planned, run_id)

    kwargs["on_run_start"] = on_run_start
    if display is not None:
        kwargs["progress"] = display
    try:
        outcomes = runner(**kwargs)
    finally:
        if display is not None:
            display.close()
        redirect.stop()
    for outcome in outcomes or []:
        print(f"run {outcome.run_id} [{outcome.partition}] {', '.join(outcome.assets)}: "
              f"{'success' if outcome.success else 'failed'} in {outcome.seconds:.1f} s")
    return EXIT_OK


# -- verbs -------------------------------------------------------------------------------
def _masks(args) -> bool | None:
    return None if args.masks is None else args.masks == "on"


def _raw_settings(args) -> dict:
    raw = {"input": args.input, "scene": args.scene, "mode": args.mode, "quality": args.quality,
           "video": args.video, "interval": args.interval}
    return {key: value for key, value in raw.items() if value is not None}


def cmd_add(args) -> int:
    from ..operations import verbs

    with _onyx(resolve_data_root(args.output)) as onyx:
        prepared = verbs.prepare_run(onyx, _raw_settings(args), args.batch, preflight=False)
        if args.dry_run:
            print(f"batch {prepared.key}: everything checked, nothing written")
            return EXIT_OK
        layout = verbs.create_batch(onyx, prepared)
        print(f"added batch {prepared.key} ({layout.root}); materialise it with `onyx resume {prepared.key}`, "
              "the UI, or dagster asset materialize")
    return EXIT_OK


def cmd_run(args) -> int:
    from ..operations import verbs

    raw = _raw_settings(args)
    with _onyx(resolve_data_root(args.output)) as onyx:
        prepared = verbs.prepare_run(onyx, raw, args.batch, args.until, args.set, _masks(args))
        info = prepared.video_info
        folder = onyx.layout(prepared.key).root
        print(f"batch {prepared.key}: {prepared.settings.input.name} ({info.width}x{info.height}, "
              f"{info.duration_s:.1f} s, {'360' if info.looks_equirectangular else 'normal'}), "
              f"scene {prepared.settings.scene}, recipe {prepared.settings.recipe}")
        print(f"  folder {folder}\n  Dagster instance {onyx.home}")
        _print_plan(prepared.plan, "plan:")
        if args.dry_run:
            print("dry run: everything checked, nothing written")
            return EXIT_OK
        code = _execute(onyx, args, lambda **kw: verbs.run_new(onyx, prepared, **kw), prepared.key)
        print(f"batch {prepared.key} done: {folder}")
        print(_ui_hint(onyx))
        return code


def cmd_resume(args) -> int:
    from ..operations import verbs

    data_root, key = _batch_arg(args.batch, args.data_root)
    with _onyx(data_root) as onyx:
        plan = verbs.plan_resume(onyx, key, args.from_step, args.until, args.set, _masks(args))
        _print_plan(plan, f"resume {key}:")
        if plan.empty:
            print(f"batch {key} is complete: nothing missing, failed or stale "
                  f"(--from-step {'|'.join(STEPS)} forces a step and what follows)")
            return EXIT_OK
        if args.dry_run:
            print("dry run: nothing written")
            return EXIT_OK
        code = _execute(onyx, args, lambda **kw: verbs.execute_locked(onyx, key, plan, "resume", **kw), key)
        print(_ui_hint(onyx))
        return code


def cmd_fork(args) -> int:
    from ..operations import verbs

    data_root, key = _batch_arg(args.batch, args.data_root)
    with _onyx(data_root) as onyx:
        plan = verbs.plan_fork(onyx, key, args.mode, args.quality, args.set, _masks(args))
        _print_plan(plan, f"fork {key} -> {args.mode}-{args.quality}:")
        if args.dry_run:
            print("dry run: nothing written")
            return EXIT_OK
        code = _execute(onyx, args, lambda **kw: verbs.execute_locked(onyx, key, plan, "fork", **kw), key)
        print(_ui_hint(onyx))
        return code


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


_SHORT = {"materialized": "ok", "stale": "stale", "failed": "FAILED", "in_progress": "running", "missing": "-"}


def _state(state: dict | None) -> str:
    if not state:
        return "?"
    text = _SHORT.get(state["state"], state["state"])
    if state["state"] == "materialized" and state.get("imported_from"):
        text = "imported"
    return text


def cmd_list(args) -> int:
    from ..operations import verbs

    with _onyx(resolve_data_root(args.data_root)) as onyx:
        rows = verbs.list_batches(onyx)
        if args.json:
            print(json.dumps({"data_root": str(onyx.data_root), "dagster_home": str(onyx.home), "batches": rows},
                             indent=2, default=str))
            return EXIT_OK
        if not rows:
            print(f"no batches under {onyx.data_root} (Dagster instance {onyx.home})")
            return EXIT_OK
        header = ["BATCH", "INPUT", "SCENE/VIDEO", "VIDEO", "FRAMES", "SPARSE", "RECIPES", "LAST RUN", "SIZE"]
        table = [header]
        for row in rows:
            settings = row.get("settings") or {}
            recipes = "; ".join(
                f"{recipe} " + "/".join(_state(states.get(name)) for name in RECIPE_ASSETS if name in states)
                for recipe, states in row["recipes"].items()) or "-"
            last = row.get("last_run")
            last_text = f"{last['status']} {last['time'][:16]}" if last else "-"
            if not row["registered"]:
                last_text = "not registered"
            table.append([
                row["batch"], Path(settings.get("input", "?")).name,
                f"{settings.get('scene', '?')}/{settings.get('video', '?')}",
                _state(row["assets"].get("video")), _state(row["assets"].get("frames")),
                _state(row["assets"].get("sparse_model")), recipes, last_text, _size(row["size_bytes"]),
            ])
        widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(str(cell).ljust(width) for cell, width in zip(r, widths)).rstrip())
        return EXIT_OK


def _open_in_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser where the desktop has one (never a text browser in the terminal)."""
    if sys.platform not in ("darwin", "win32") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _serve(folder: Path, page: Path, port: int, open_page: bool) -> int:
    """Serve ``folder`` on loopback until Ctrl-C (what a page needs when a browser refuses file://)."""
    import functools
    import http.server
    import signal

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per request would bury the URL
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(folder)))
    except OSError as error:
        raise OperationError(f"cannot serve on 127.0.0.1:{port} ({error.strerror}): choose another --port") from None
    # SIGTERM stops it like Ctrl-C, even where the parent left SIGTERM ignored or blocked (both are inherited).
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    with server:
        url = f"http://127.0.0.1:{server.server_address[1]}/{page.relative_to(folder).as_posix()}"
        print(f"serving {folder} on 127.0.0.1 (Ctrl-C stops)\n{url}", flush=True)
        if open_page:
            _open_in_browser(url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return EXIT_OK


def cmd_view(args) -> int:
    from ..operations import verbs

    data_root, key = _batch_arg(args.batch, args.data_root)
    with _onyx(data_root) as onyx:
        page = verbs.viewer_page(onyx, key, args.recipe)
        output = onyx.layout(key).output
    print(page, flush=True)
    if args.serve:
        return _serve(output, page, args.port, not args.no_open)
    if args.no_open or not _open_in_browser(page.as_uri()):
        print(f"open it in a browser (it works offline from disk), or serve it: onyx view {key} --serve")
    return EXIT_OK


def cmd_export(args) -> int:
    from ..operations import archive

    data_root, key = _batch_arg(args.batch, args.data_root)
    output = args.output or f"{key}.zip"
    with _onyx(data_root) as onyx:
        manifest = archive.export_batch(onyx, key, Path(output))
        print(f"exported {key}: {len(manifest['files'])} files, {len(manifest['lineage'])} materialisations "
              f"-> {os.path.abspath(output)}")
        if manifest["skipped_symlinks"]:
            print(f"  skipped symlinks: {', '.join(manifest['skipped_symlinks'])}")
    return EXIT_OK


def cmd_import(args) -> int:
    from ..operations import archive

    with _onyx(resolve_data_root(args.output)) as onyx:
        result = archive.import_batch(onyx, Path(args.archive), args.as_key)
        print(f"imported {result['batch']}: {result['files']} files verified -> {result['folder']}; "
              f"{result['materializations']} materialisations recorded as imported")
        print(_ui_hint(onyx))
    return EXIT_OK


def cmd_purge(args) -> int:
    from ..operations import purge

    data_root, key = _batch_arg(args.batch, args.data_root)
    with _onyx(data_root) as onyx:
        removed = purge.purge(onyx, key, keep_output=args.keep_output)
        kept = " (kept output/, masks/, batch.json)" if args.keep_output else ""
        print(f"purged {key}{kept}: removed {', '.join(removed) or 'nothing'}")
    return EXIT_OK


def cmd_purge_all(args) -> int:
    from ..operations import purge

    with _onyx(resolve_data_root(args.data_root)) as onyx:
        keys = purge.purge_candidates(onyx)
        if not keys:
            print(f"no batches under {onyx.data_root}")
            return EXIT_OK
        purge.check_purge_all(onyx, keys)
        if not args.yes:
            print(f"purge {len(keys)} batch(es) under {onyx.data_root}: {', '.join(keys)}")
            print("This deletes their files and Dagster partitions. Continue? [y/N] ", end="", flush=True)
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("nothing purged")
                return EXIT_OK
        for key in keys:
            purge.purge(onyx, key)
            print(f"purged {key}")
    return EXIT_OK


def cmd_install(rest: list[str]) -> int:
    """``onyx install [--build] [--tools ...] [--prefix ...] [--tag ...] ...``: exactly
    ``python -m onyx_dagster.install install ...`` (its options, its exit codes)."""
    try:
        from ..install.cli import main as images_main
    except ImportError as error:
        raise OperationError(f"image installation is not available in this checkout ({error})") from None
    return images_main(["install", *rest])


def cmd_ui(args) -> int:
    data_root = resolve_data_root(args.data_root)
    onyx = Onyx(data_root)
    env = {**os.environ, "DAGSTER_HOME": str(onyx.home), "ONYX_DATA": str(data_root)}
    command = [sys.executable, "-m", "dagster", "dev", "-m", "onyx_dagster.definitions"]
    print(f"DAGSTER_HOME={onyx.home} ONYX_DATA={data_root} dagster {' '.join(command[3:])}")
    if args.print_only:
        return EXIT_OK
    onyx.instance()  # create the home (and its dagster.yaml) so dagster dev uses it
    onyx.close()
    os.execve(sys.executable, command, env)
    return EXIT_OK  # pragma: no cover


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onyx", description="Walk-through videos to 3D scenes, over Dagster (see `onyx VERB -h`).",
        epilog="DAGSTER_HOME: the Dagster instance (default: dagster-home/ beside the data root). ONYX_DATA: the data root "
               "(default ./onyx-data).")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    def common(p, batch=True):
        if batch:
            p.add_argument("batch", metavar="BATCH", help="batch key, or the path of a batch folder")
            p.add_argument("-d", "--data-root", help="data root (default: ONYX_DATA, else ./onyx-data)")
        p.add_argument("-v", "--verbose", action="store_true", help="Dagster's own log lines too")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    def set_option(p):
        p.add_argument("--masks", choices=("on", "off"), type=str.lower, default=None,
                       help="off: plan without the masks step (default: ONYX_MASKS, on); a run checks first that "
                            "what masks need is there (the SegFormer weights: onyx install --weights)")
        p.set_defaults(masks=None)
        p.add_argument("--set", action="append", default=[], metavar="STEP.SETTING=VALUE",
                       help="a step's setting for this run, as the launchpad names it (repeatable), e.g. "
                            "sparse_model.matching=exhaustive, frames.interval=0.2, reconstruction.iterations=3000; "
                            "a step given one runs again")

    def new_batch_options(p):
        p.add_argument("-i", "--input", help="the video file")
        p.add_argument("-o", "--output",
                       help="data root holding the batch folders (default: ONYX_DATA, else ./onyx-data)")
        p.add_argument("--mode", help="gaussian | photogrammetry")
        p.add_argument("--scene", help="indoor | outdoor")
        p.add_argument("--quality", help="proto | production")
        p.add_argument("--video", help="auto (default) | normal | 360")
        p.add_argument("--interval", type=float, help="seconds between frames (overrides the computed interval)")
        p.add_argument("--batch", help="batch key (default: <video name>-<8 hex of its sha256>, as the drop folder)")
        p.add_argument("--dry-run", action="store_true", help="validate and print the plan; write nothing")

    p = sub.add_parser("run", help="a new batch: validate, create, materialise its first recipe")
    new_batch_options(p)
    p.add_argument("--until", choices=list(STEPS), type=str.upper,
                   help="stop after this step (e.g. SFM: frames and camera poses only)")
    set_option(p)
    common(p, batch=False)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("add", help="a new batch, validated and registered, without running it")
    new_batch_options(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("resume", help="materialise what is missing, failed or stale")
    common(p)
    p.add_argument("--from-step", choices=list(STEPS), type=str.upper,
                   help="force this step and everything after it")
    p.add_argument("--until", choices=list(STEPS), type=str.upper, help="stop after this step")
    set_option(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("fork", help="another recipe on the same frames and sparse model")
    common(p)
    p.add_argument("--mode", required=True, help="gaussian | photogrammetry")
    p.add_argument("--quality", required=True, help="proto | production")
    set_option(p)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_fork)

    p = sub.add_parser("list", help="the batches of a data root and their state (from Dagster)")
    p.add_argument("data_root", nargs="?", metavar="DATA_ROOT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("view", help="the batch's viewer page: print its path, open it (or --serve its folder)")
    p.add_argument("batch", metavar="BATCH", help="batch key, or the path of a batch folder")
    p.add_argument("-d", "--data-root", help="data root (default: ONYX_DATA, else ./onyx-data)")
    p.add_argument("--recipe", help="whose page (default: the batch's own recipe)")
    p.add_argument("--serve", action="store_true", help="serve the batch's output folder on 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free one)")
    p.add_argument("--no-open", action="store_true", help="only print the path (or the URL)")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("export", help="a batch as a zip with a manifest and its lineage")
    common(p)
    p.add_argument("-o", "--output", metavar="FILE.zip", help="default: ./BATCH.zip")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-batch", help="a batch from an `onyx export` zip, every checksum verified")
    p.add_argument("archive", metavar="FILE.zip")
    p.add_argument("-o", "--output", metavar="DATA_ROOT", help="default: ONYX_DATA, else ./onyx-data")
    p.add_argument("--as", dest="as_key", metavar="NEWKEY", help="import under another batch key")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("purge", help="remove a batch's files and partition")
    common(p)
    p.add_argument("--keep-output", action="store_true", help="keep output/, masks/ and batch.json")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("purge-all", help="purge every batch of a data root (asks y/N)")
    p.add_argument("data_root", metavar="DATA_ROOT")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_purge_all)

    sub.add_parser("install", add_help=False,
                   help="build or pull the tool images: `onyx install -h` lists the options "
                        "(python -m onyx_dagster.install install)")

    p = sub.add_parser("ui", aliases=["dev"], help="dagster dev on this data root's instance")
    p.add_argument("data_root", nargs="?", metavar="DATA_ROOT")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the command")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster's beta/preview notices are not for this audience; Onyx's own warnings are.
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", category=OnyxSettingsWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = None
    try:
        if argv[:1] == ["install"]:
            return cmd_install(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except OperationError as error:
        _err(str(error))
        return error.exit_code
    except (BatchError, SettingsError) as error:
        _err(str(error))
        return EXIT_REFUSED
    except RunFailed as error:
        _err(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        batch = getattr(args, "batch", None) or "BATCH"
        _err(f"interrupted: what finished is kept; `onyx resume {batch}` continues")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one place an unexpected error is turned into words
        log = _crash_log(argv)
        _err(f"unexpected error ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
             f"the details are in {log}")
        return EXIT_FAILED


def _crash_log(argv: list[str]) -> str:
    """Write the traceback of an unexpected error where a person can send it; returns its path."""
    import datetime as dt
    import tempfile
    import traceback

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"onyx {' '.join(argv)}\n\n{traceback.format_exc()}"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    for folder in (os.path.join(state, "onyx", "logs"), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"onyx-error-{stamp}-{os.getpid()}.log")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            return path
        except OSError:
            continue
    return "(no writable folder for the log)"


if __name__ == "__main__":
    sys.exit(main())
