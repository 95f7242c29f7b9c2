"""`pcm-processor recompute --from DATE`: every stored KPI since a date, under the catalogue in
force (after a new catalogue version: a changed rule, target, calendar or term).

It runs the processor's own pipeline on keys instead of messages, with every KPI recomputed
from the facts (the ``recompute`` engine): every (entity, period) with facts since the date is
marked dirty, every procedure with a stage since then is touched, and one recomputation per
chunk recomputes them. Values are written with versions that win over the old ones (same facts,
later computation), stamped with the new catalogue version, and the changed entity-level values
are published on the KPI topic. Safe beside running processors: whichever computation saw more
facts wins, as always. Running processors hold incremental states built under the catalogue
they started with: restart them after a catalogue change, so they rebuild their states.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.producer import AcknowledgedProducer
from pcm_common.kafka.topics import DEAD_LETTER, topic_for_domain
from tqdm import tqdm

from pcm_processor.adapters.clickhouse import ClickHouseStore
from pcm_processor.adapters.kafka import Outbox, ProducerSender
from pcm_processor.adapters.kpi_sql import SqlCompiler, literal
from pcm_processor.app import derived_plans
from pcm_processor.domain.buckets import BUCKET_COLUMNS, BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext
from pcm_processor.domain.kpis import build_plan
from pcm_processor.domain.registry import FactDomain, fact_domain
from pcm_processor.pipeline import DomainPipeline, Freshness, PipelineConfig, chunks
from pcm_processor.settings import ProcessorSettings
from pcm_processor.terms import TermTracker
from pcm_processor.trackers import tracker_for

T = TypeVar("T")


@dataclass
class Recomputed:
    keys: int = 0
    procedures: int = 0


def recompute(
    settings: ProcessorSettings, catalogues: Catalogues, since: dt.date, quiet: bool = False
) -> Recomputed:
    return asyncio.run(_recompute(settings, catalogues, since, quiet))


async def _recompute(
    settings: ProcessorSettings, catalogues: Catalogues, since: dt.date, quiet: bool
) -> Recomputed:
    clock = BucketClock(settings.processor_time_zone)
    store = ClickHouseStore(
        lambda: connect(settings),
        settings.clickhouse_database,
        settings.processor_retry_max_backoff_s,
        catalogues.version_label,
    )
    producer = AcknowledgedProducer(
        settings.kafka_bootstrap, settings.kafka_request_timeout_ms, "pcm-processor-recompute"
    )
    outputs = Outbox(
        ProducerSender(producer),
        DEAD_LETTER.name(settings.topic_prefix),
        topic_for_domain("kpi_value").name(settings.topic_prefix),
        settings.processor_retry_max_backoff_s,
        catalogues.version_label,
    )
    done = Recomputed()
    try:
        for name in settings.domain_names:
            domain = fact_domain(name)
            plan = build_plan(domain, catalogues)
            terms = tracker_for(domain, catalogues, clock, store, settings.clickhouse_database)
            pipeline = DomainPipeline(
                plan,
                MappingContext(CatalogueView.of(catalogues), clock),
                SqlCompiler(plan, settings.clickhouse_database),
                store,
                outputs,
                PipelineConfig(query_keys=settings.processor_query_keys),
                Freshness(),
                terms=terms,
                derived=derived_plans(name, catalogues, settings.clickhouse_database),
            )
            start = clock.period_of(since, "DAY")
            for grain in plan.grains:
                keys = await _stored_keys(store, domain, grain, start, settings.clickhouse_database)
                done.keys += len(keys)
                for part in _progress(keys, f"{name} {grain}", quiet, settings):
                    pipeline.mark(grain, part)
                    await pipeline.recompute()
            if isinstance(terms, TermTracker):
                done.procedures += await _retrack(store, pipeline, terms, start, quiet, settings)
            elif terms is not None:  # snapshots from the facts: retake every closed period
                await pipeline.close_periods(since=clock_date(start, settings))
    finally:
        store.close()
        producer.close()
    return done


async def _stored_keys(
    store: ClickHouseStore, domain: FactDomain, grain: str, start: int, database: str
) -> list[tuple[str, int, int]]:
    bucket = BUCKET_COLUMNS[grain]
    found = await store.query(
        f"stored {grain} periods",
        f"SELECT DISTINCT entity_id, toUInt32({bucket}), toUInt32(month_start) "
        f"FROM {database}.{domain.table} WHERE {bucket} >= toDateTime({literal(start)}) "
        "ORDER BY 1, 2",
    )
    return [(str(entity), int(period), int(month)) for entity, period, month in found]


async def _retrack(
    store: ClickHouseStore,
    pipeline: DomainPipeline,
    terms: TermTracker,
    start: int,
    quiet: bool,
    settings: ProcessorSettings,
) -> int:
    """Every procedure with a stage since ``start``: statuses and term KPIs under the catalogue
    in force."""
    found = await store.query(
        "procedures to retrack",
        f"SELECT DISTINCT entity_id, procedure_id FROM {settings.clickhouse_database}."
        f"procedure_stage_events WHERE occurred_at >= toDateTime({literal(start)})",
    )
    procedures = [(str(entity), str(procedure)) for entity, procedure in found]
    for part in _progress(procedures, "procedure terms", quiet, settings):
        terms.touch_subjects(part)
        await pipeline.flush()
    await pipeline.close_periods(since=clock_date(start, settings))
    return len(procedures)


def clock_date(start: int, settings: ProcessorSettings) -> dt.date:
    return BucketClock(settings.processor_time_zone).local_date(start)


def _progress(
    items: Sequence[T], what: str, quiet: bool, settings: ProcessorSettings
) -> Iterable[list[T]]:
    """The items in chunks of a query's size, with a progress bar."""
    parts = [list(part) for part in chunks(items, settings.processor_query_keys)]
    bar: Iterable[list[T]] = tqdm(parts, desc=f"recompute {what}", unit="chunk", disable=quiet)
    return bar
