"""The faust application: per fact domain, a pipeline fed with batches, and a flush timer.

Two ways to feed a domain's ``DomainRunner`` (``PCM_PROCESSOR_DELIVERY``):

- ``batch`` (default): faust's consumer hands each fetch of the domain's topic to the runner in
  one call (``adapters/faust_consumer.py``), and a faust task stores the batches. About twice
  the throughput of ``stream``: faust's per-message stream machinery is skipped.
- ``stream``: a faust agent takes batches with ``Stream.noack_take`` (nothing acked by faust).
  Used as well whenever the installed faust is not the reviewed version.

Either way a message is acknowledged only once the pipeline released it (facts and KPIs
written), and commits never pass the ``OffsetLedger``. Faust's ``exactly_once`` guarantee and
its tables are not used: ClickHouse holds the facts, the only source of truth.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.producer import AcknowledgedProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger

from pcm_processor.adapters.clickhouse import ClickHouseStore
from pcm_processor.adapters.faust_consumer import (
    REVIEWED_DRAIN_SHA256,
    BatchSink,
    GuardedConsumer,
    GuardedTransport,
    OffsetLedger,
    drain_source_digest,
)
from pcm_processor.adapters.kafka import Outbox, ProducerSender
from pcm_processor.adapters.kpi_sql import SqlCompiler
from pcm_processor.adapters.lag import LagMonitor
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext
from pcm_processor.domain.kpis import KpiPlan, build_plan
from pcm_processor.domain.registry import derived_for, fact_domain
from pcm_processor.domain.states import StateStore
from pcm_processor.incremental import IncrementalKpis
from pcm_processor.metrics import PROCESSOR_FRESHNESS_SECONDS
from pcm_processor.pipeline import DomainPipeline, Freshness, Inbound, PipelineConfig, Released
from pcm_processor.settings import ProcessorSettings
from pcm_processor.trackers import tracker_for

log = get_logger(__name__)
CRASH_EXIT_CODE = 70
Acker = Callable[[Any], None]


class ProcessorApp(faust.App):
    """A faust app whose consumer never commits past what the processor released."""

    offset_ledger: OffsetLedger
    batch_sinks: dict[str, BatchSink]
    pipelines: list[DomainPipeline]

    def _new_transport(self) -> Any:
        return GuardedTransport(self.conf.broker_consumer, self)


class DomainRunner:
    """Accumulates one domain's messages into batches (size or time, whichever first), stores
    them with the pipeline, and acks what the pipeline's flushes released.

    Two faust tasks per domain: the storing loop and the flushing loop, so fact inserts go on
    while KPIs are recomputed. The queue between the feeder (consumer or agent) and the storing
    loop is short: while a batch is stored the next one is fetched, and when ClickHouse is slow or
    down the feeder blocks on the queue, so consumption stops instead of buffering without bound.
    """

    def __init__(
        self,
        pipeline: DomainPipeline,
        ledger: OffsetLedger,
        ack: Acker,
        max_events: int,
        max_seconds: float,
        queued: int = 8,
    ) -> None:
        self.pipeline = pipeline
        self._ledger = ledger
        self._ack = ack
        self._max_events = max_events
        self._max_seconds = max_seconds
        self._queued = queued
        self._queue: asyncio.Queue[tuple[int, list[Inbound]]] | None = None

    def _inbox(self) -> asyncio.Queue[tuple[int, list[Inbound]]]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._queued)
        return self._queue

    async def submit_messages(self, messages: list[Any]) -> None:
        """Batch delivery: faust ``Message`` objects straight from the consumer's fetch."""
        await self._submit(
            [Inbound(m.topic, m.partition, m.offset, m.key, m.value, m) for m in messages]
        )

    async def submit_events(self, events: Sequence[Any]) -> None:
        """Stream delivery: faust ``Event`` objects from ``noack_take``."""
        await self._submit(
            [
                Inbound(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value,
                    e,
                )
                for e in events
            ]
        )

    async def _submit(self, messages: list[Inbound]) -> None:
        """Queued with the assignment they were fetched under (see ``_current``)."""
        await self._inbox().put((self.pipeline.generation, messages))

    async def run(self) -> None:
        """The storing loop (a faust task): take, accumulate up to a full batch, store it."""
        inbox = self._inbox()
        while True:
            generation, batch = await self._current(inbox)
            deadline = time.monotonic() + self._max_seconds
            while len(batch) < self._max_events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    later, more = await asyncio.wait_for(self._current(inbox), remaining)
                except TimeoutError:
                    break
                if later != generation:  # reassigned meanwhile: what was gathered comes again
                    generation, batch = later, []
                batch += more
            if generation == self.pipeline.generation:
                await self.pipeline.process(batch)

    async def _current(
        self, inbox: asyncio.Queue[tuple[int, list[Inbound]]]
    ) -> tuple[int, list[Inbound]]:
        """The next messages fetched under the current assignment: those fetched before a
        reassignment are dropped, the consumer brings them again from the committed offsets."""
        while True:
            generation, messages = await inbox.get()
            if generation == self.pipeline.generation:
                return generation, messages

    async def flush_forever(self, tick_s: float) -> None:
        """The flushing loop (a faust task): flush KPIs when due, then ack what they cover."""
        while True:
            if self.pipeline.flush_due():
                self._release(await self.pipeline.flush())
            else:
                await self.pipeline.close_periods()
                await asyncio.sleep(tick_s)

    async def recompute_forever(self, tick_s: float) -> None:
        """The recomputing loop (a faust task): recompute KPIs from the facts when due, then
        release the offsets they cover for the commit."""
        while True:
            if self.pipeline.recompute_due():
                self._release(await self.pipeline.recompute())
            else:
                await asyncio.sleep(tick_s)

    def _release(self, released: Released) -> None:
        for (topic, partition), end in released.ends.items():
            self._ledger.release(TP(topic, partition), end)
        for message in released.acks:
            self._ack(message.token)


async def _crash_on_error(what: str, work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    except asyncio.CancelledError:
        raise
    except BaseException:
        # Infrastructure errors are retried inside the pipeline; reaching this is a bug.
        # Crash-only: exit without acking, Kafka replays the uncommitted batches on restart.
        log.exception("processor failed; exiting so that a restart replays its batches", step=what)
        os._exit(CRASH_EXIT_CODE)


def _task(what: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def task() -> None:
        await _crash_on_error(what, work)

    return task


def _agent(runner: DomainRunner, settings: ProcessorSettings) -> Callable[[Any], Awaitable[None]]:
    async def consume(stream: Any) -> None:
        async def take() -> None:
            async for events in stream.noack_take(
                settings.processor_batch_max_events, within=settings.processor_batch_max_seconds
            ):
                await runner.submit_events(events)

        await _crash_on_error("take", take)

    return consume


def _new_app(settings: ProcessorSettings) -> tuple[ProcessorApp, str]:
    brokers = [f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")]
    # Faust wants a data directory even without tables; keep it out of the working directory.
    datadir = settings.processor_state_dir or (
        Path(tempfile.gettempdir()) / "pcm-processor" / settings.group_id
    )
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = ProcessorApp(
        settings.group_id,
        broker=brokers,
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,  # topics are created explicitly (ensure_topics at start)
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.processor_session_timeout_s,
        broker_heartbeat_interval=settings.processor_heartbeat_interval_s,
        broker_commit_interval=settings.processor_commit_interval_s,
        broker_max_poll_records=settings.processor_batch_max_events,
        stream_buffer_maxsize=max(4_096, 2 * settings.processor_batch_max_events),
        producer_acks=-1,
    )
    app.offset_ledger = OffsetLedger()
    app.batch_sinks = {}
    app.pipelines = []
    reviewed = drain_source_digest() == REVIEWED_DRAIN_SHA256
    GuardedConsumer.fast_drain = reviewed and settings.processor_fast_drain
    delivery = settings.processor_delivery
    if delivery == "batch" and not GuardedConsumer.fast_drain:
        log.warning("batch delivery needs the reviewed faust drain; using stream delivery")
        delivery = "stream"
    return app, delivery


def derived_plans(
    name: str, catalogues: Catalogues, database: str
) -> list[tuple[KpiPlan, SqlCompiler]]:
    """The KPI plans of the derived sources a domain feeds (activity across domains)."""
    plans = [build_plan(derived, catalogues) for derived in derived_for(name)]
    return [(plan, SqlCompiler(plan, database)) for plan in plans if plan.kpis]


def _pipeline(
    name: str,
    settings: ProcessorSettings,
    catalogues: Catalogues,
    ctx: MappingContext,
    outbox: Outbox,
    config: PipelineConfig,
    freshness: Freshness,
) -> DomainPipeline:
    """One domain's pipeline: its KPIs split between the incremental engine and recomputation
    (all recomputed with ``processor_kpi_engine=recompute``), the term tracker if it has terms."""
    database = settings.clickhouse_database
    plan = build_plan(fact_domain(name), catalogues)
    for code, reason in plan.skipped:
        log.info("KPI not computed by the stream", domain=name, kpi=code, reason=reason)

    def store() -> ClickHouseStore:
        return ClickHouseStore(
            lambda: connect(settings),
            database,
            settings.processor_retry_max_backoff_s,
            catalogues.version_label,
        )

    kpi_store = store()
    terms = tracker_for(plan.domain, catalogues, ctx.clock, kpi_store, database)
    incremental = None
    if settings.processor_kpi_engine == "incremental":
        summable, plan = plan.split()
        if summable.kpis:
            states = StateStore(settings.processor_state_max_slices)
            compiler = SqlCompiler(summable, database)
            incremental = IncrementalKpis(
                summable,
                compiler,
                kpi_store,
                states,
                ctx.clock,
                settings.processor_query_keys,
                settings.processor_query_subjects,
                build_store=store(),
            )
    return DomainPipeline(
        plan,
        ctx,
        SqlCompiler(plan, database),
        store(),
        outbox,
        config,
        freshness,
        kpi_store=kpi_store,
        terms=terms,
        derived=derived_plans(name, catalogues, database),
        incremental=incremental,
        recompute_store=store(),
    )


def build_app(settings: ProcessorSettings, catalogues: Catalogues) -> ProcessorApp:
    """The faust app with one pipeline per configured fact domain, ready for a faust Worker."""
    app, delivery = _new_app(settings)
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock(settings.processor_time_zone))
    producer = AcknowledgedProducer(
        settings.kafka_bootstrap, settings.kafka_request_timeout_ms, "pcm-processor"
    )
    outbox = Outbox(
        ProducerSender(producer),
        topic_for_domain("dead_letter").name(settings.topic_prefix),
        topic_for_domain("kpi_value").name(settings.topic_prefix),
        settings.processor_retry_max_backoff_s,
        catalogues.version_label,
    )
    incremental = settings.processor_kpi_engine == "incremental"
    config = PipelineConfig(
        kpi_interval_s=settings.processor_kpi_interval_s,
        query_keys=settings.processor_query_keys,
        publish_slices=settings.processor_publish_slices,
        period_close_interval_s=settings.processor_period_close_interval_s,
        recomputed_interval_s=settings.processor_recomputed_interval_s if incremental else None,
    )
    freshness = Freshness()
    PROCESSOR_FRESHNESS_SECONDS.set_function(freshness.seconds)
    topics = []
    for name in settings.domain_names:
        pipeline = _pipeline(name, settings, catalogues, ctx, outbox, config, freshness)
        app.pipelines.append(pipeline)
        topic_name = topic_for_domain(name).name(settings.topic_prefix)
        topics.append(topic_name)
        topic = app.topic(
            topic_name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        runner = DomainRunner(
            pipeline,
            app.offset_ledger,
            _message_acker(app) if delivery == "batch" else _event_ack,
            settings.processor_batch_max_events,
            settings.processor_batch_max_seconds,
        )
        if delivery == "batch":
            app.topics.add(topic)  # subscribe; the consumer hands its fetches to the runner
            app.batch_sinks[topic_name] = runner.submit_messages
        else:
            app.agent(topic, name=f"pcm_processor.{name}")(_agent(runner, settings))
        app.task(_task(f"store {name}", runner.run))
        tick = settings.processor_flush_tick_s
        app.task(_task(f"flush {name}", partial(runner.flush_forever, tick)))
        app.task(_task(f"recompute {name}", partial(runner.recompute_forever, tick)))
    _watch_lag(app, settings, topics)
    log.info("processor wired", delivery=delivery, domains=settings.domain_names)

    async def reset_ledger(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0]
        app.offset_ledger.reset(assigned)
        for pipeline in app.pipelines:
            pipeline.reset()  # other processes may have moved the entities' facts meanwhile

    # mode's handler type (mypy_extensions VarArg/NamedArg) does not accept a coroutine function.
    cast(Any, app.on_partitions_assigned).connect(reset_ledger)

    return app


def _event_ack(event: Any) -> None:
    # Event.ack, not Stream.ack: the same acknowledgement without the per-event sensor
    # bookkeeping (faust's Monitor only keeps counters there).
    event.ack()


def _message_acker(app: ProcessorApp) -> Acker:
    def ack(message: Any) -> None:
        message.ack(app.consumer)

    return ack


def _watch_lag(app: ProcessorApp, settings: ProcessorSettings, topics: list[str]) -> None:
    monitor = LagMonitor(settings.kafka_bootstrap, settings.group_id, topics)

    async def refresh_lag() -> None:
        try:
            await asyncio.to_thread(monitor.refresh)
        except Exception as error:  # a metric must never stop the processor
            log.warning("consumer lag refresh failed", error=str(error))

    app.timer(settings.processor_lag_refresh_s, name="pcm_processor.lag")(refresh_lag)
