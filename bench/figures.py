"""Every figure `make bench` reports: which benchmark prints it, its unit, the pattern that finds
it in that benchmark's output (group 1 is the value) and whether higher is better.

The targets are not here but in `targets.py`, one declaration of data.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The benchmarks in the order `make bench` runs them; each is its own script in bench/.
BENCHMARKS = (
    "intake_bench",
    "complaints_bench",
    "indicators_bench",
    "surveys_bench",
    "processor_bench",
    "national_bench",
    "benchmark_bench",
)
NUMBER = r"([\d,]+(?:\.\d+)?)"
# national_bench.py prints its engine figures per --engines and rate; these are its defaults.
NATIONAL_ENGINES = ("incremental", "recompute")
NATIONAL_RATES = ("1,000", "10,000")


class Figure(NamedTuple):
    bench: str
    name: str
    unit: str
    pattern: str
    higher_is_better: bool


def national_figures() -> tuple[Figure, ...]:
    """Figures of national_bench.py: the history load, per engine its backlog, CPU, memory and
    event -> KPI p50/p95 per grain and rate, then the scaling and the minimal-consumer floor."""
    bench = "national_bench"
    found = [
        Figure(
            bench,
            "national history load",
            "rows/s",
            rf"history load\s+[\d,]+ facts in [\d.]+ s = {NUMBER} rows/s",
            True,
        )
    ]
    for engine in NATIONAL_ENGINES:
        tag, name = rf"\[{engine}\]", f"national {engine}"
        found += [
            Figure(bench, f"{name} backlog", "events/s", rf"{tag} backlog facts\s+{NUMBER}", True),
            Figure(
                bench,
                f"{name} until KPIs current",
                "events/s",
                rf"{tag} until KPIs current\s+{NUMBER}",
                True,
            ),
            Figure(bench, f"{name} CPU per 1,000", "ms", rf"{tag} processor CPU\s+{NUMBER}", False),
            Figure(bench, f"{name} peak RSS", "MB", rf"{tag} peak RSS\s+{NUMBER}", False),
        ]
        for rate in NATIONAL_RATES:
            for grain in ("HOUR", "DAY", "MONTH"):
                line = rf"{tag} event->KPI {grain}\s+at {rate}/s\s+p50"
                found += [
                    Figure(
                        bench, f"{name} {grain} p50 @{rate}/s", "s", rf"{line} {NUMBER} s", False
                    ),
                    Figure(
                        bench,
                        f"{name} {grain} p95 @{rate}/s",
                        "s",
                        rf"{line} \S+ s\s+p95 {NUMBER} s",
                        False,
                    ),
                ]
        found.append(
            Figure(
                bench, f"{name} facts path / minimal", "x", rf"facts path {tag}\s+{NUMBER}x", True
            )
        )
    return (
        *found,
        Figure(bench, "national two processes", "events/s", rf"two processes\s+{NUMBER}", True),
        Figure(
            bench,
            "national two / one process",
            "x",
            rf"two processes\s+[\d,]+ events/s.*: {NUMBER}x\)",
            True,
        ),
        Figure(
            bench,
            "national two / one process until KPIs current",
            "x",
            rf"two processes until KPIs current [\d,]+ events/s.*: {NUMBER}x\)",
            True,
        ),
        Figure(
            bench,
            "national minimal consumer",
            "events/s",
            rf"minimal consumer\s+{NUMBER} events/s",
            True,
        ),
        Figure(
            bench,
            "national minimal consumer CPU",
            "ms",
            rf"minimal consumer\s+[\d,]+ events/s, CPU {NUMBER} ms",
            False,
        ),
    )


FIGURES: tuple[Figure, ...] = (
    Figure("intake_bench", "intake batched", "events/s", rf"batched\s*:\s*{NUMBER} events/s", True),
    Figure("intake_bench", "intake batched p99", "ms", rf"batched\s*:.*p99\s+{NUMBER} ms", False),
    Figure(
        "intake_bench",
        "intake batched, memory-only ledger",
        "events/s",
        rf"memory-only ledger:\s*{NUMBER} events/s",
        True,
    ),
    Figure("intake_bench", "intake one per call", "events/s", rf"one per call:\s*{NUMBER}", True),
    Figure(
        "complaints_bench",
        "complaint transitions",
        "transitions/s",
        rf"transitions\s*:\s*{NUMBER} transitions/s",
        True,
    ),
    Figure(
        "complaints_bench",
        "complaint outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    Figure(
        "indicators_bench",
        "indicator values reported",
        "values/s",
        rf"values\s*:\s*{NUMBER} values/s",
        True,
    ),
    Figure(
        "indicators_bench",
        "indicator outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    Figure(
        "surveys_bench",
        "survey responses",
        "responses/s",
        rf"responses\s*:\s*{NUMBER} responses/s",
        True,
    ),
    Figure(
        "surveys_bench",
        "survey outbox -> Kafka p95",
        "ms",
        rf"outbox -> Kafka:.*p95\s+{NUMBER} ms",
        False,
    ),
    Figure(
        "processor_bench",
        "processor into ClickHouse",
        "events/s",
        rf"processor throughput\s+{NUMBER}",
        True,
    ),
    Figure(
        "processor_bench",
        "processor until KPIs current",
        "events/s",
        rf"incl\. KPIs current\s+{NUMBER}",
        True,
    ),
    Figure(
        "processor_bench", "processor freshness p95", "s", rf"freshness at .*p95 {NUMBER} s", False
    ),
    Figure(
        "processor_bench",
        "processor CPU per 1,000 events",
        "ms",
        rf"processor CPU\s+{NUMBER} ms",
        False,
    ),
    Figure(
        "processor_bench",
        "processor / naive per-event insert",
        "x",
        rf"naive per-event insert .*processor is {NUMBER}x",
        True,
    ),
    Figure(
        "processor_bench",
        "processor / bulk insert (driver)",
        "x",
        rf"bulk insert \(driver\) .*processor is {NUMBER}x",
        True,
    ),
    Figure(
        "processor_bench",
        "processor / bulk insert (TSV)",
        "x",
        rf"bulk insert \(TSV\) .*processor is {NUMBER}x",
        True,
    ),
    *national_figures(),
    Figure(
        "benchmark_bench",
        "benchmark assessment per month (2,700 entities)",
        "s",
        rf"assessment per month\s+{NUMBER} s",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark assessment per quarter",
        "s",
        rf"assessment per quarter\s+{NUMBER} s",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark assessment per year",
        "s",
        rf"assessment per year\s+{NUMBER} s",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark worker pass (month, quarter, year)",
        "s",
        rf"worker pass \(month, quarter, year\) {NUMBER} s",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark national ranking read p95",
        "ms",
        rf"national ranking read\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark peer-group ranking read p95",
        "ms",
        rf"peer-group ranking read\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    Figure(
        "benchmark_bench",
        "benchmark entity results + evidence p95",
        "ms",
        rf"entity results \+ evidence\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    Figure(
        "benchmark_bench",
        "dashboard overview page p95 (2,700 entities)",
        "ms",
        rf"dashboard overview page\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
    Figure(
        "benchmark_bench",
        "dashboard entity page p95",
        "ms",
        rf"dashboard entity page\s+p50 [\d.]+ ms, p95 {NUMBER} ms",
        False,
    ),
)
BY_NAME = {figure.name: figure for figure in FIGURES}


def parse(bench: str, output: str) -> dict[str, float]:
    """The figures of one benchmark found in its output, by name (absent ones are left out)."""
    found = {}
    for figure in FIGURES:
        match = re.search(figure.pattern, output) if figure.bench == bench else None
        if match:
            found[figure.name] = float(match.group(1).replace(",", ""))
    return found
