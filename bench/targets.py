"""The targets of `make bench`, one declaration: per figure (a name of `figures.py`) the
comparison the figure must pass against the target value, and the issue the target comes from.

">=" and ">" mean higher is better, "<=" and "<" lower is better. A figure not listed here has no
target: it is reported with its baseline, without pass or fail. The values are those of the
README's bench table and of the issue texts quoted there (and in the benchmarks' docstrings).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Comparison = Literal[">=", ">", "<=", "<"]


class Target(NamedTuple):
    figure: str
    comparison: Comparison
    value: float
    issue: int | None  # None: the issue's number is not recorded in the repository
    source: str  # where the target is written

    @property
    def higher_is_better(self) -> bool:
        return self.comparison in (">=", ">")

    def met(self, now: float) -> bool:
        return {
            ">=": now >= self.value,
            ">": now > self.value,
            "<=": now <= self.value,
            "<": now < self.value,
        }[self.comparison]


_README = "README bench table"
_NATIONAL = "issue 10 (bench/national_bench.py, README bench table)"
_BENCHMARK = "issue 13 (bench/benchmark_bench.py, README bench table)"


def _national() -> list[Target]:
    found = []
    for engine in ("incremental", "recompute"):
        name = f"national {engine}"
        found += [
            # The issue's figure: the backlog's events over the time until KPIs are current,
            # not only until its facts are stored.
            Target(f"{name} until KPIs current", ">=", 20_000, 10, f"{_NATIONAL}: per process"),
            Target(f"{name} peak RSS", "<=", 500, 10, _NATIONAL),
            Target(f"{name} HOUR p95 @10,000/s", "<=", 2, 10, _NATIONAL),
            Target(f"{name} DAY p95 @10,000/s", "<=", 2, 10, _NATIONAL),
            Target(f"{name} MONTH p95 @10,000/s", "<=", 60, 10, _NATIONAL),
            Target(f"{name} facts path / minimal", ">=", 0.6, 10, _NATIONAL),
        ]
    return found


TARGETS: tuple[Target, ...] = (
    Target("intake batched", ">=", 50_000, None, f"{_README}; bench/intake_bench.py"),
    # The complaints issue is not quoted by number; 11 is its place in the roadmap (after the
    # national scale, issue 10, before surveys and indicators, issue 12).
    Target("complaint transitions", ">=", 5_000, 11, f"{_README}; bench/complaints_bench.py"),
    Target("indicator values reported", ">=", 1_000, 12, f"{_README}; bench/indicators_bench.py"),
    Target("survey responses", ">=", 1_000, 12, f"{_README}; bench/surveys_bench.py"),
    Target("processor into ClickHouse", ">=", 20_000, 5, "issue 5 (bench/processor_bench.py)"),
    Target("processor freshness p95", "<=", 2, 5, "issue 5 (bench/processor_bench.py)"),
    *_national(),
    Target("national two / one process", ">", 1, 10, f"{_README}: more than one"),
    Target(
        "benchmark assessment per month (2,700 entities)",
        "<",
        60,
        13,
        f"{_README}: within the worker's minute",
    ),
    Target(
        "benchmark worker pass (month, quarter, year)",
        "<",
        60,
        13,
        "issue 13: results refresh within a minute of the KPIs they depend on changing",
    ),
    Target("benchmark national ranking read p95", "<", 300, 13, _BENCHMARK),
    Target("benchmark entity results + evidence p95", "<", 300, 13, _BENCHMARK),
    Target("dashboard overview page p95 (2,700 entities)", "<", 500, 13, _BENCHMARK),
    Target("dashboard entity page p95", "<", 500, 13, _BENCHMARK),
)
BY_FIGURE = {target.figure: target for target in TARGETS}
