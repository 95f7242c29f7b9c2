"""`make bench`: run every benchmark against the local stack, then print one table of every
figure: unit, target, baseline, now, ratio to the baseline, pass/fail.

Each benchmark is its own script (so it can be run alone) and prints a small table; its output
is kept in bench/results/<name>.txt, and the output it replaces in bench/results/previous/ (only
when that one had figures, so a failed run does not wipe the baseline). The figures are declared
in bench/figures.py, their targets in bench/targets.py. The table (bench/summary.py) is also
written as bench/results/summary.json and drawn in bench/results/summary.png.

    python bench/run.py                       # run everything, compare with the previous run
    python bench/run.py --baseline pinned     # compare with bench/baseline.json (committed)
    python bench/run.py --baseline FILE.json  # or with any file of that shape
    python bench/run.py --report-only         # rebuild table, JSON and PNG from the outputs
    python bench/run.py --report-only --pin   # ... and pin the figures now as bench/baseline.json

A benchmark that fails leaves its figures missing and the others still run. The exit status is
non-zero when a benchmark failed or a declared figure is missing; a missed target is reported,
not an error. Figures are only comparable between runs on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import summary
from figures import BENCHMARKS, parse

BENCH = Path(__file__).resolve().parent


def run_benchmarks(
    results: Path, scripts: Path = BENCH, benchmarks: Sequence[str] = BENCHMARKS
) -> None:
    """Run each benchmark as its own process (scripts/<benchmark>.py); keep its output, the one
    it replaces and its exit status (results/runs.json)."""
    results.mkdir(parents=True, exist_ok=True)
    previous = results / summary.PREVIOUS
    runs: dict[str, dict[str, Any]] = summary.read_runs(results)
    for bench in benchmarks:
        output = results / f"{bench}.txt"
        if output.exists() and parse(bench, output.read_text(errors="replace")):
            previous.mkdir(exist_ok=True)
            shutil.copy2(output, previous / output.name)
        print(f"=== {bench}.py ===", flush=True)
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, str(scripts / f"{bench}.py")],
            capture_output=True,
            text=True,
            check=False,
        )
        print(run.stdout, end="", flush=True)
        output.write_text(run.stdout)
        (results / f"{bench}.err").write_text(run.stderr)
        runs[bench] = {
            "returncode": run.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
        }
        (results / summary.RUNS).write_text(json.dumps(runs, indent=2) + "\n")
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--baseline",
        default="previous",
        help='"previous" (the outputs the last run replaced), "pinned" (bench/baseline.json) '
        "or the path of a baseline JSON file",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild the table, summary.json and summary.png from the outputs",
    )
    parser.add_argument(
        "--pin", action="store_true", help="write the figures now as bench/baseline.json"
    )
    parser.add_argument("--results", type=Path, default=summary.RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    results: Path = args.results

    if args.report_only and not results.is_dir():
        print(f"no benchmark outputs in {results}: run `make bench` first", file=sys.stderr)
        return 1
    try:  # a pinned or file baseline is read before the run, so that a typo costs nothing
        baseline = summary.choose_baseline(args.baseline, results)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"cannot read the baseline {args.baseline!r}: {error!r}", file=sys.stderr)
        return 2
    if not args.report_only:
        run_benchmarks(results)
        # "previous" is read again: the outputs this run replaced.
        baseline = summary.choose_baseline(args.baseline, results)
    report = summary.write_report(results, baseline)
    print()
    print(report.text)
    print(f"written: {summary.shown_path(report.json_path)}, {summary.shown_path(report.png_path)}")
    if args.pin:
        now = {row.figure.name: row.now for row in report.rows if row.now is not None}
        note = f"pinned from {summary.shown_path(results)} by run.py --pin"
        document = summary.pinned_document(now, note)
        summary.PINNED.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"pinned {len(now)} figures in {summary.shown_path(summary.PINNED)}")
    failed = report.failed_benchmarks  # this run's, or the last recorded with --report-only
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if report.missing:
        print(f"missing: {len(report.missing)} figures", file=sys.stderr)
    return 1 if failed or report.missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
