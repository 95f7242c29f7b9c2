"""The KPI computation in plain Python, straight from the definition (pure, unoptimised).

It reads the same fact rows the processor writes and the same ``KpiPlan``, but none of the SQL:
tests compare its output with what the processor left in ClickHouse, so the SQL compiler, the
batching, the retries and the crash recovery are all checked against the definition.

Semantics, which the SQL must match:
- facts are first merged into logical facts, one per (entity, period, *dedup_by*), taking every
  column from the first copy (lowest Kafka offset; the earlier row on a tie), so a duplicate, a
  replayed event or a later message with the same id changes nothing;
- each logical fact counts in four slices: (channel, service), (channel, all), (all, service),
  (all, all);
- aggregates run over the logical facts of a slice that pass the measure's filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pcm_common.domains import Row

from pcm_processor.domain.buckets import BUCKET_COLUMNS
from pcm_processor.domain.fields import Lookup, PeriodSubjectHas, SubjectHas, evaluate
from pcm_processor.domain.kpis import ALL, KpiPlan, KpiRow, SliceKey, aggregate

Fact = dict[str, Any]
KpiKey = tuple[str, str, str, int, str, str]


def _subject_flags(plan: KpiPlan, rows: list[Fact], grain: str) -> dict[Lookup, set[Any]]:
    """For each lookup, the subjects for which it holds: (entity, subject) for SubjectHas,
    (entity, period, subject) for PeriodSubjectHas, from every raw fact (not only the
    prefiltered ones)."""
    subject, bucket = plan.domain.subject, BUCKET_COLUMNS[grain]
    flags: dict[Lookup, set[Any]] = {}
    for lookup in plan.lookups:
        if isinstance(lookup, SubjectHas):
            flags[lookup] = {
                (r["entity_id"], r[subject]) for r in rows if r[lookup.column] in lookup.values
            }
        else:
            flags[lookup] = {
                (r["entity_id"], r[bucket], r[subject])
                for r in rows
                if evaluate(lookup.where, r, {}, plan.params)
            }
    return flags


def _logical_facts(plan: KpiPlan, rows: list[Fact], grain: str) -> dict[tuple[Any, ...], Fact]:
    column = BUCKET_COLUMNS[grain]
    merged: dict[tuple[Any, ...], Fact] = {}
    for row in rows:
        key = (row["entity_id"], row[column], *(row[name] for name in plan.domain.dedup_by))
        current = merged.get(key)
        if current is None or row["kafka_offset"] < current["kafka_offset"]:
            merged[key] = row
    return merged


def _field_values(plan: KpiPlan, fact: Fact, flags: Mapping[Lookup, set[Any]], grain: str) -> Fact:
    entity, subject = fact["entity_id"], fact[plan.domain.subject]
    in_period = (entity, fact[BUCKET_COLUMNS[grain]], subject)
    has = {
        lookup: (in_period if isinstance(lookup, PeriodSubjectHas) else (entity, subject))
        in members
        for lookup, members in flags.items()
    }
    return {
        name: evaluate(expr, fact, has, plan.params) for name, expr in plan.domain.fields.items()
    }


def reference_kpis(plan: KpiPlan, rows: Iterable[Row]) -> dict[KpiKey, KpiRow]:
    """Every KPI value the processor should hold after consuming events mapped to ``rows``."""
    columns = plan.domain.columns
    every = [dict(zip(columns, row, strict=True)) for row in rows]
    facts = every
    if plan.prefilter is not None:
        column, labels = plan.prefilter
        facts = [f for f in facts if f[column] in labels]
    first, second = plan.domain.slice_by
    result: dict[KpiKey, KpiRow] = {}
    for grain in plan.grains:
        slices: dict[SliceKey, list[Fact]] = defaultdict(list)
        flags = _subject_flags(plan, every, grain)
        for fact in _logical_facts(plan, facts, grain).values():
            fields = _field_values(plan, fact, flags, grain)
            period = fact[BUCKET_COLUMNS[grain]]
            for a, b in (
                (fields[first], fields[second]),
                (fields[first], ALL),
                (ALL, fields[second]),
                (ALL, ALL),
            ):
                slices[SliceKey(fact["entity_id"], grain, period, a, b)].append(fields)
        for key, members in slices.items():
            values = [aggregate(agg, members) for agg in plan.aggregates]
            for kpi_row in plan.finalize(key, values):
                result[kpi_row.key] = kpi_row
    return result
