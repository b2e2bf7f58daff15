"""``python -m bench [NAME ...]``: run the benchmarks, print their tables, record them in
bench/results.json and write bench/RESULTS.md from it."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .harness import load_average, record, table

BENCHMARKS = ["ingest", "sfm", "sfm_real", "overhead", "filter", "sensor", "backfill", "splat", "walk360", "mesh"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started_load, rows, failure = load_average(), [], None
        try:
            rows = module.run()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failure = f"{type(error).__name__}: {error}"
            failed.append(name)
        record(name, rows, failure, started_load)
        print(f"\n{name}:\n{table(rows) if rows else 'failed: ' + str(failure)}\n", flush=True)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
