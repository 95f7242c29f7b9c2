"""`make bench`: run every benchmark against the local stack and print their figures, side by
side with the previous run's.

Each benchmark is its own script (so it can be run alone) and prints a small table; its output
is kept in bench/results/<name>.txt. Before a run overwrites it, the figures of the previous
output are read back, so every run ends with one table: figure, previous, now, ratio. Figures are
only comparable between runs on the same machine under the same load.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
BENCHMARKS = [
    "intake_bench.py",
    "complaints_bench.py",
    "indicators_bench.py",
    "surveys_bench.py",
    "processor_bench.py",
    "national_bench.py",
    "benchmark_bench.py",
]
NUMBER = r"([\d,]+(?:\.\d+)?)"
Figure = tuple[str, str, str, str, bool]
# national_bench.py prints its engine figures per --engines and rate; these are its defaults.
NATIONAL_ENGINES = ("incremental", "recompute")
NATIONAL_RATES = ("1,000", "10,000")


def national_figures() -> tuple[Figure, ...]:
    """Figures of national_bench.py: the history load, per engine its backlog, CPU, memory and
    event -> KPI p50/p95 per grain and rate, then the scaling and the minimal-consumer floor."""
    found: list[Figure] = [
        (
            "national_bench",
            "national history load",
            "rows/s",
            rf"history load\s+[\d,]+ facts in [\d.]+ s = {NUMBER} rows/s",
            True,
        )
    ]
    for engine in NATIONAL_ENGINES:
        tag, name = rf"\[{engine}\]", f"national {engine}"
        found += [
            (
                "national_bench",
                f"{name} backlog",
                "events/s",
                rf"{tag} backlog facts\s+{NUMBER}",
                True,
            ),
            (
                "national_bench",
                f"{name} until KPIs current",
                "events/s",
                rf"{tag} until KPIs current\s+{NUMBER}",
                True,
            ),
            (
                "national_bench",
                f"{name} CPU per 1,000",
                "ms",
                rf"{tag} processor CPU\s+{NUMBER}",
                False,
            ),
            ("national_bench", f"{name} peak RSS", "MB", rf"{tag} peak RSS\s+{NUMBER}", False),
        ]
        for rate in NATIONAL_RATES:
            for grain in ("HOUR", "DAY", "MONTH"):
                line = rf"{tag} event->KPI {grain}\s+at {rate}/s\s+p50"
                found += [
                    (
                        "national_bench",
                        f"{name} {grain} p50 @{rate}/s",
                        "s",
                        rf"{line} {NUMBER} s",
                        False,
                    ),
                    (
                        "national_bench",
                        f"{name} {grain} p95 @{rate}/s",
                        "s",
                        rf"{line} \S+ s\s+p95 {NUMBER} s",
                        False,
                    ),
                ]
        found.append(
            (
                "national_bench",
                f"{name} facts path / minimal",
                "x",
                rf"facts path {tag}\s+{NUMBER}x",
                True,
            )
        )
    return (
        *found,
        (
            "national_bench",
            "national two processes",
            "events/s",
            rf"two processes\s+{NUMBER}",
            True,
        ),
        (
            "national_bench",
            "national two / one process",
            "x",
            rf"two processes\s+[\d,]+ events/s.*: {NUMBER}x\)",
            True,
        ),
        (
            "national_bench",
            "national minimal consumer",
            "events/s",
            rf"minimal consumer\s+{NUMBER} events/s",
            True,
        ),
        (
            "national_bench",
            "national minimal consumer CPU",
            "ms",
            rf"minimal consumer\s+[\d,]+ events/s, CPU {NUMBER} ms",
            False,
        ),
    )


# (benchmark, figure, unit, pattern whose group 1 is the value, higher is better)
FIGURES: tuple[Figure, ...] = (
    ("intake_bench", "intake batched", "events/s", rf"batched\s*:\s*{NUMBER} events/s", True),
    ("intake_bench", "intake batched p99", "ms", rf"batched\s*:.*p99\s+{NUMBER} ms", False),
    (
        "intake_bench",
        "intake batched, memory-only ledger",
        "events/s",
        rf"memory-only ledger:\s*{NUMBER} events/s",
        True,
    ),
    ("intake_bench", "intake one per call", "events/s", rf"one per call:\s*{NUMBER}", True),
    (
        "complaints_bench",
        "complaint transitions",
        "transitions/s",
        rf"transitions\s*:\s*{NUMBER} transitions/s",
        True,
    ),
    (
        "complaints_bench",
        "complaint outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    (
        "indicators_bench",
        "indicator values reported",
        "values/s",
        rf"values\s*:\s*{NUMBER} values/s",
        True,
    ),
    (
        "surveys_bench",
        "survey responses",
        "responses/s",
        rf"responses\s*:\s*{NUMBER} responses/s",
        True,
    ),
    (
        "surveys_bench",
        "survey outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    (
        "indicators_bench",
        "indicator outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    (
        "processor_bench",
        "processor into ClickHouse",
        "events/s",
        rf"processor throughput\s+{NUMBER}",
        True,
    ),
    (
        "processor_bench",
        "processor until KPIs current",
        "events/s",
        rf"incl\. KPIs current\s+{NUMBER}",
        True,
    ),
    ("processor_bench", "processor freshness p95", "s", rf"freshness at .*p95 {NUMBER} s", False),
    (
        "processor_bench",
        "processor CPU per 1,000 events",
        "ms",
        rf"processor CPU\s+{NUMBER} ms",
        False,
    ),
    *national_figures(),
    (
        "benchmark_bench",
        "benchmark assessment per month (2,700 entities)",
        "s",
        rf"assessment per month\s+{NUMBER} s",
        False,
    ),
    (
        "benchmark_bench",
        "benchmark national ranking read p95",
        "ms",
        rf"national ranking read\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    (
        "benchmark_bench",
        "benchmark entity results + evidence p95",
        "ms",
        rf"entity results \+ evidence\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    (
        "benchmark_bench",
        "dashboard overview page p95 (2,700 entities)",
        "ms",
        rf"dashboard overview page\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    (
        "benchmark_bench",
        "dashboard entity page p95",
        "ms",
        rf"dashboard entity page\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
)


def figures(name: str, output: str) -> dict[str, float]:
    found = {}
    for bench, figure, _, pattern, _ in FIGURES:
        match = re.search(pattern, output) if bench == name else None
        if match:
            found[figure] = float(match.group(1).replace(",", ""))
    return found


def previous_figures(name: str) -> dict[str, float]:
    path = RESULTS / f"{name}.txt"
    return figures(name, path.read_text()) if path.exists() else {}


def print_comparison(before: dict[str, float], now: dict[str, float]) -> None:
    print("\n=== figures: previous run -> this run ===")
    print(f"  {'figure':52} {'previous':>12} {'now':>12} {'ratio':>7}")
    for _, figure, unit, _, higher_is_better in FIGURES:
        if figure not in now:
            continue
        old = before.get(figure)
        ratio = f"{now[figure] / old:6.2f}x" if old else "     -"
        arrow = "" if not old else ("+" if (now[figure] > old) == higher_is_better else "-")
        shown = f"{old:12,.1f}" if old is not None else f"{'-':>12}"
        print(f"  {figure + ' (' + unit + ')':52} {shown} {now[figure]:12,.1f} {ratio} {arrow}")


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    failed = []
    before: dict[str, float] = {}
    now: dict[str, float] = {}
    for script in BENCHMARKS:
        name = Path(script).stem
        before |= previous_figures(name)
        print(f"=== {script} ===", flush=True)
        run = subprocess.run(
            [sys.executable, str(BENCH / script)], capture_output=True, text=True, check=False
        )
        print(run.stdout, end="")
        (RESULTS / f"{name}.txt").write_text(run.stdout)
        now |= figures(name, run.stdout)
        if run.returncode != 0:
            failed.append(script)
            print(run.stderr[-3000:], file=sys.stderr)
    print_comparison(before, now)
    (RESULTS / "figures.json").write_text(json.dumps({"previous": before, "now": now}, indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
