"""Benchmark results as protobuf (``BenchmarkResult``): published on Kafka and answered by the
gRPC service, built from a fresh result or from the stored rows alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import benchmark_pb2, benchmark_service_pb2, common_pb2

from pcm_benchmark.reads import StoredCriterion, StoredResult, Trend

GRAINS = {
    "MONTH": common_pb2.GRAIN_MONTH,
    "QUARTER": common_pb2.GRAIN_QUARTER,
    "YEAR": common_pb2.GRAIN_YEAR,
}
LEVELS = {
    "NONE": benchmark_pb2.STANDARD_LEVEL_NONE,
    "BASICO": benchmark_pb2.STANDARD_LEVEL_BASICO,
    "INTERMEDIO": benchmark_pb2.STANDARD_LEVEL_INTERMEDIO,
    "AVANZADO": benchmark_pb2.STANDARD_LEVEL_AVANZADO,
}
DIRECTIONS = {
    name.removeprefix("TREND_DIRECTION_"): number
    for name, number in benchmark_service_pb2.TrendDirection.items()
    if number
}
OUTCOMES = {
    name.removeprefix("CRITERION_OUTCOME_"): number
    for name, number in benchmark_pb2.CriterionOutcome.items()
    if number
}


def _timestamp(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(dt.UTC) if moment.tzinfo else moment)
    return stamp


def _period(day: dt.date, time_zone: str) -> Timestamp:
    return _timestamp(dt.datetime.combine(day, dt.time(), ZoneInfo(time_zone)))


def check_of(criterion: StoredCriterion) -> benchmark_pb2.CriterionCheck:
    return benchmark_pb2.CriterionCheck(
        criterion_id=criterion.criterion_id,
        level=LEVELS.get(criterion.level, benchmark_pb2.STANDARD_LEVEL_UNSPECIFIED),
        kpi_code=criterion.kpi_code,
        indicator_code=criterion.indicator_code,
        op=criterion.op,
        threshold=criterion.threshold,
        value=criterion.value if criterion.value is not None else 0.0,
        met=criterion.outcome == "MET",
        has_evidence=criterion.value is not None,
        outcome=OUTCOMES[criterion.outcome],
        numerator=criterion.numerator,
        denominator=criterion.denominator,
        reason=criterion.reason,
        verified=criterion.verified,
    )


def message_of(
    stored: StoredResult,
    checks: Sequence[StoredCriterion] = (),
    time_zone: str = "America/Lima",
) -> benchmark_pb2.BenchmarkResult:
    """A stored result (and, when given, the evidence of its criteria) as a message."""
    return benchmark_pb2.BenchmarkResult(
        entity_id=stored.entity_id,
        standard_code=stored.standard,
        grain=GRAINS[stored.grain],
        period_start=_period(stored.period_start, time_zone),
        level=LEVELS[stored.level],
        score=stored.score,
        criteria=[check_of(c) for c in checks],
        gap_to_next_level=list(stored.gaps),
        peer_group=stored.peer_group,
        rank=stored.peer_rank,
        peer_count=stored.peer_count,
        percentile=stored.peer_percentile,
        catalogue_version=stored.catalogue_version,
        computed_at=_timestamp(stored.computed_at.replace(tzinfo=dt.UTC)),
        national_rank=stored.national_rank,
        national_count=stored.national_count,
        national_percentile=stored.national_percentile,
    )


def trend_message(trend: Trend) -> benchmark_service_pb2.ScoreTrend:
    """A score's change against the period before and a year before, judged (``Trend``)."""
    message = benchmark_service_pb2.ScoreTrend(
        standard_code=trend.standard,
        score=trend.score,
        vs_previous=DIRECTIONS[Trend.direction(trend.period_over_period)],
        vs_year_before=DIRECTIONS[Trend.direction(trend.year_over_year)],
    )
    if trend.previous is not None:
        message.previous_score = trend.previous
    if trend.year_before is not None:
        message.year_before_score = trend.year_before
    return message
