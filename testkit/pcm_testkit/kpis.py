"""KPIs as ClickHouse has them against the pure-Python reference over the same events: the
check that nothing was lost or counted twice."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping

from clickhouse_driver import Client
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.domains import Row
from pcm_common.kafka.envelope import PoisonMessage
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.kpis import KpiPlan, build_plan
from pcm_processor.domain.reference import KpiKey, reference_kpis
from pcm_processor.domain.registry import (
    DERIVED,
    DOMAINS,
    FactDomain,
    UnionPart,
    fact_domain,
)

Measured = tuple[float | None, float, float]
"""value (None: no value, stored as NaN), numerator, denominator"""


def read_kpis(
    client: Client, database: str, codes: Collection[str] | None = None
) -> dict[KpiKey, Measured]:
    """Every current KPI row of ``database`` (FINAL: one row per key after replacements), or
    only those of ``codes``."""
    where = " WHERE kpi_code IN %(codes)s" if codes is not None else ""
    rows = client.execute(
        "SELECT entity_id, kpi_code, toString(grain), toUInt32(period_start), channel, "
        f"service_id, value, numerator, denominator FROM {database}.kpi_values FINAL{where}",
        {"codes": tuple(codes or ())},
    )
    return {
        tuple(row[:6]): (None if math.isnan(row[6]) else row[6], row[7], row[8]) for row in rows
    }


def stream_kpi_codes(catalogues: Catalogues) -> set[str]:
    """The KPIs the stream computes from its facts, which ``expected_kpis`` covers: by event
    time, and by due date where the facts carry it (complaints). The term tracker's, by due
    date and at period close, are checked in their own tests."""
    return {
        kpi.code
        for kpi in catalogues.kpis
        if kpi.basis == "events"
        or (kpi.basis == "due_date" and kpi.source in DOMAINS and DOMAINS[kpi.source].due_dated)
    }


def expected_kpis(
    catalogues: Catalogues,
    envelopes: Mapping[str, Iterable[envelope_pb2.EventEnvelope]],
    time_zone: str = "America/Lima",
) -> dict[KpiKey, Measured]:
    """The reference KPIs of the usable envelopes, per domain name (poison is skipped, as the
    processor dead-letters it)."""
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock(time_zone))
    result: dict[KpiKey, Measured] = {}
    stored: dict[str, list[Row]] = {}
    for name, items in envelopes.items():
        domain = fact_domain(name)
        rows = stored[domain.table] = []
        for envelope in items:
            try:
                rows.extend(domain.rows(envelope, Position(0, 0), ctx))
            except PoisonMessage:
                continue
        result |= _reference(build_plan(domain, catalogues), rows)
    for derived in DERIVED.values():
        rows = [
            _derived_row(derived, part, row)
            for part in derived.parts
            for row in stored.get(part.facts.name, [])
        ]
        result |= _reference(build_plan(derived, catalogues), rows)
    return result


def _derived_row(derived: FactDomain, part: UnionPart, row: Row) -> Row:
    """A stored fact as a row of a derived source, in the derived table's column order."""
    values = part.row(dict(zip(part.facts.column_names, row, strict=True)))
    return tuple(values[column] for column in derived.columns)


def _reference(plan: KpiPlan, rows: list[Row]) -> dict[KpiKey, Measured]:
    return {
        key: (row.value, row.numerator, row.denominator)
        for key, row in reference_kpis(plan, rows).items()
    }


def differences(
    expected: Mapping[KpiKey, Measured], actual: Mapping[KpiKey, Measured], tolerance: float = 1e-9
) -> list[str]:
    """Human-readable differences: missing, unexpected and different KPI values."""
    problems = [f"missing {k}: {expected[k]}" for k in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected {k}: {actual[k]}" for k in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        if any(not _close(a, b, tolerance) for a, b in zip(want, got, strict=True)):
            problems.append(f"different {key}: expected {want}, got {got}")
    return problems


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    """Counts are exact; means and percents may differ by float rounding only."""
    if a is None or b is None:
        return a is b
    if float(a).is_integer() and float(b).is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def kpi_value_row(
    entity_id: str,
    code: str,
    period_start: dt.datetime,
    value: float,
    denominator: float = 1_000,
    version: int = 1,
    computed_at: dt.datetime | None = None,
    channel: str = "",
) -> dict[str, object]:
    """A ``kpi_values`` row as the processor writes it (MONTH grain; numerator from the value as
    a percentage of the denominator), for tests that seed KPIs without the pipeline."""
    return {
        "entity_id": entity_id,
        "kpi_code": code,
        "grain": "MONTH",
        "period_start": period_start,
        "channel": channel,
        "service_id": "",
        "value": value,
        "numerator": value * denominator / 100,
        "denominator": denominator,
        "computed_at": computed_at or period_start,
        "version": version,
        "insufficient_sample": 0,
        "catalogue_version": "test",
    }
