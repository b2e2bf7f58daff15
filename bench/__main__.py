"""``python -m bench [NAME ...]``: run the benchmarks, print the table, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .harness import write_results

BENCHMARKS = ["ingest", "sfm", "overhead", "filter", "sensor", "backfill"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    rows, skipped = [], {}
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(module.run())
        except Exception as error:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            skipped[name] = f"failed: {type(error).__name__}: {error}"
    print(write_results(rows, skipped))
    return 1 if skipped and not rows else 0


if __name__ == "__main__":
    sys.exit(main())
