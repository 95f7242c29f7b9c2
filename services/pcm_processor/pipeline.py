"""One fact domain's batch pipeline: decode, store facts, bring KPIs current, release.

The order is what makes every KPI exact under crashes and replays:

1. decode and map each message; poison goes to the dead-letter topic (acknowledged);
2. insert the batch's facts (one columnar insert, retried until ClickHouse takes it);
3. remember what the facts touched (subjects for the incremental KPIs, (entity, grain, period)
   keys for the recomputed ones), and hold the messages;
4. at most every ``kpi_interval_s`` (or at once when there is nothing to compute), a *flush*
   brings the incremental KPIs (``incremental.py``: counts, sums, means, ratios) and the term
   tracker up to the held messages, writes the changed KPI rows with a version that grows with
   the facts seen, publishes them, and acknowledges the messages;
5. at most every ``recomputed_interval_s`` (or at once when the stream is idle), a
   *recomputation* writes the channel and service slices the flushes deferred (a flush writes
   the entity-level values) and recomputes the keys dirty for the other KPIs (percentiles,
   cross-domain) from the facts; only then are the offsets of the messages flushed before it
   *released*: the consumer commits them.

Flushes and recomputations run concurrently with each other and with steps 1-3 of later batches
(each on its own ClickHouse connection): a message is released only by a recomputation that
started after the flush that acknowledged it, hence after its facts were stored and its keys
marked; facts stored meanwhile only make the result more current.

A crash anywhere before 5 leaves the offsets uncommitted, so the messages are consumed again;
facts are merged per ticket/procedure (duplicates change nothing) and every KPI is a function of
the facts, so the replay leaves every KPI as it would have been.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from pcm_common.domains import Row
from pcm_common.kafka.envelope import PoisonMessage, decode
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger

from pcm_processor.adapters.kpi_sql import SqlCompiler, Touched
from pcm_processor.domain.buckets import BUCKET_COLUMNS, GRAINS
from pcm_processor.domain.facts import MappingContext, Position
from pcm_processor.domain.kpis import (
    ALL,
    KpiKey,
    KpiPlan,
    KpiRow,
    Measured,
    SliceKey,
    kpi_version,
)
from pcm_processor.domain.poison import DeadLetter
from pcm_processor.incremental import IncrementalKpis
from pcm_processor.metrics import (
    PROCESSOR_BATCH_SIZE,
    PROCESSOR_DEAD_LETTER,
    PROCESSOR_EVENTS,
    PROCESSOR_KPI_FLUSH_SECONDS,
    PROCESSOR_KPI_ROWS,
    PROCESSOR_KPI_SECONDS,
)

log = get_logger(__name__)

PeriodKey = tuple[str, int]
RecordKey = tuple[str, str, int, str, str]
"""(grain, entity, period start, channel, service) of a recompute query's record."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A Kafka message as the pipeline sees it; ``token`` is the caller's handle for acking."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    token: Any = None


class Store(Protocol):
    async def insert_facts(
        self, table: str, columns: Sequence[str], rows: Sequence[Row]
    ) -> None: ...

    async def query(self, what: str, sql: str, touched: Touched = ()) -> list[tuple[Any, ...]]: ...

    async def insert_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None: ...


class Terms(Protocol):
    """The term tracker (``terms.py``) as the pipeline sees it."""

    def touch(self, rows: Sequence[Row]) -> None: ...

    @property
    def pending(self) -> bool: ...

    async def flush(self, computed_at: int) -> list[tuple[KpiRow, int]]: ...

    async def close_periods(
        self, computed_at: int, since: dt.date | None = None
    ) -> list[tuple[KpiRow, int]]: ...

    async def record_closes(self) -> None: ...


class Outputs(Protocol):
    async def dead_letter(self, items: Sequence[DeadLetter]) -> None: ...

    async def publish_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None: ...


WRITE_ROWS = 10_000
"""KPI rows made, written and published at a time: bounds the memory of a flush or a
recomputation over every entity (a pass at 2,700 entities makes millions of rows)."""


@dataclass(frozen=True)
class PipelineConfig:
    kpi_interval_s: float = 1.0
    """Longest time facts may sit without their KPIs recomputed while events keep arriving."""
    query_keys: int = 400
    """Most (entity, period) keys per recompute query (bounds the SQL size)."""
    publish_slices: bool = False
    """Publish every slice on the KPI topic; False: only entity-level (all/all) values."""
    cache_limit: int = 200_000
    """Recomputed slices (and term KPI values) remembered to skip rewriting unchanged ones
    (cleared when full)."""
    period_close_interval_s: float = 60.0
    """How often the term tracker looks for closed periods whose snapshots are not taken."""
    recomputed_interval_s: float | None = None
    """Longest time the recomputed KPIs may lag their facts while events keep arriving (None:
    ``kpi_interval_s``); when the stream is idle they are recomputed at once."""

    @property
    def recompute_every_s(self) -> float:
        if self.recomputed_interval_s is None:
            return self.kpi_interval_s
        return self.recomputed_interval_s


@dataclass(frozen=True)
class Released:
    """What a flush or recomputation hands back: messages to acknowledge, and per (topic,
    partition) the offset after the last message whose KPIs are all current (commit point)."""

    acks: Sequence[Inbound] = ()
    ends: Mapping[tuple[str, int], int] = field(default_factory=dict)


class Freshness:
    """Newest event time written to ClickHouse, for the freshness gauge."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.newest = 0
        self._wall = wall

    def observe(self, event_seconds: int) -> None:
        self.newest = max(self.newest, event_seconds)

    def seconds(self) -> float:
        return self._wall() - self.newest if self.newest else float("nan")


K = TypeVar("K")
V = TypeVar("V")


class LastValues(Generic[K, V]):
    """What was last written per key, to skip rewriting what did not change. Bounded: cleared
    when full, which only costs rewriting unchanged values once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}

    def changed(self, key: K, value: V) -> bool:
        return self._values.get(key) != value

    def remember(self, items: Sequence[tuple[K, V]]) -> None:
        if len(self._values) + len(items) > self._limit:
            self._values.clear()
        self._values.update(items)

    def clear(self) -> None:
        self._values.clear()


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DomainPipeline:
    def __init__(
        self,
        plan: KpiPlan,
        ctx: MappingContext,
        compiler: SqlCompiler,
        store: Store,
        outputs: Outputs,
        config: PipelineConfig,
        freshness: Freshness,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        kpi_store: Store | None = None,
        terms: Terms | None = None,
        derived: Sequence[tuple[KpiPlan, SqlCompiler]] = (),
        incremental: IncrementalKpis | None = None,
        recompute_store: Store | None = None,
    ) -> None:
        """``plan``: the domain's KPIs recomputed from the facts (all of them without
        ``incremental``, else what ``KpiPlan.split`` left to recompute). Flushes, recomputations
        and fact inserts run concurrently, each on its own store (connection)."""
        self.plan = plan
        self._ctx = ctx
        self._store = store
        self._kpi_store = kpi_store or store  # flushes run beside inserts: own connection
        self._recompute_store = recompute_store or self._kpi_store
        self._outputs = outputs
        self._config = config
        self._freshness = freshness
        self._monotonic = monotonic
        self._wall = wall
        self._payload = topic_for_domain(plan.domain.name).payload
        domain = plan.domain
        self._entity = domain.index("entity_id")
        self._month = domain.index("month_start")
        self._buckets = {grain: domain.index(BUCKET_COLUMNS[grain]) for grain in GRAINS}
        self._label = domain.index(plan.prefilter[0]) if plan.prefilter else None
        self._subject = domain.index(domain.subject)
        # Derived sources this domain feeds (activity across domains): recomputed on its keys.
        own = [(plan, compiler)] if plan.kpis else []
        self._plans = [*own, *derived]
        self._compiler = compiler
        self._grains = tuple(g for g in GRAINS if any(g in p.grains for p, _ in self._plans))
        self._every_fact_counts = bool(derived)
        self._dirty: dict[str, dict[PeriodKey, int]] = {grain: {} for grain in self._grains}
        self._held: list[Inbound] = []
        self.generation = 0
        """Counts the partition assignments (``reset``): a batch fetched under an earlier one is
        dropped; the consumer brings its messages again from the committed offsets."""
        self._awaiting: dict[tuple[str, int], int] = {}
        # Incremental rows need no such memory: a flush writes only KPIs whose inputs moved.
        self._term_values: LastValues[KpiKey, Measured] = LastValues(config.cache_limit)
        self._recomputed: list[LastValues[RecordKey, tuple[Any, ...]]] = [
            LastValues(config.cache_limit) for _ in self._plans
        ]
        self._last_flush = float("-inf")
        self._last_recompute = float("-inf")
        self._recomputing = False
        self._last_batch = float("-inf")
        self._terms = terms
        self._incremental = incremental
        self._last_close = float("-inf")

    # --- steps 1-3: facts ------------------------------------------------------------------

    def classify(self, message: Inbound) -> tuple[tuple[Row, ...], int] | DeadLetter:
        """The fact rows and event time of a message, or why it goes to the dead-letter topic."""
        try:
            envelope = decode(message.value, self._payload)
            position = Position(message.partition, message.offset)
            return self.plan.domain.rows(envelope, position, self._ctx), envelope.time.seconds
        except PoisonMessage as poison:
            return self._dead(message, poison.reason, poison.detail)
        except Exception as error:  # a mapping bug must not stop the stream: park the message
            log.exception("mapping failed", topic=message.topic, offset=message.offset)
            return self._dead(message, "mapping_error", f"{type(error).__name__}: {error}")

    @staticmethod
    def _dead(message: Inbound, reason: str, detail: str) -> DeadLetter:
        return DeadLetter(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            reason,
            detail,
        )

    async def process(self, batch: Sequence[Inbound]) -> None:
        """Store one batch's facts and dead letters; its messages wait for the next flush.

        A batch whose storing a reassignment interrupts is stored (the same facts again are
        harmless) but not flushed: the consumer brings its messages again from the committed
        offsets, and the incremental KPIs need each entity's messages of one assignment in
        offset order, with no gap (see ``IncrementalKpis.flush``)."""
        generation = self.generation
        rows: list[Row] = []
        dead: list[DeadLetter] = []
        newest = 0
        for message in batch:
            outcome = self.classify(message)
            if isinstance(outcome, DeadLetter):
                dead.append(outcome)
            else:
                rows.extend(outcome[0])
                newest = max(newest, outcome[1])
        if rows:
            domain = self.plan.domain
            await self._store.insert_facts(domain.table, domain.columns, rows)
            PROCESSOR_BATCH_SIZE.observe(len(rows))
            PROCESSOR_EVENTS.labels(batch[0].topic).inc(len(batch) - len(dead))
            self._freshness.observe(newest)
        if dead:
            await self._outputs.dead_letter(dead)
            for item in dead:
                PROCESSOR_DEAD_LETTER.labels(item.topic, item.reason).inc()
        if self.generation != generation:
            return
        self._mark_dirty(rows)
        await self._mark_subjects(rows)
        if self.generation != generation:
            return
        if self._incremental is not None:
            self._incremental.touch(rows)
        if self._terms is not None:
            self._terms.touch(rows)
        self._last_batch = self._monotonic()
        self._held.extend(batch)  # last: a flush that sees these messages sees their keys

    def _mark_dirty(self, rows: Sequence[Row]) -> None:
        if not self._dirty:
            return
        for row in rows:
            irrelevant = self._label is not None and not self.plan.relevant(row[self._label])
            if irrelevant and not self._every_fact_counts:
                continue  # e.g. an observation: no KPI of the catalogue reads it
            entity, month = row[self._entity], row[self._month]
            for grain, keys in self._dirty.items():
                keys[(entity, row[self._buckets[grain]])] = month

    def mark(self, grain: str, keys: Sequence[tuple[str, int, int]]) -> None:
        """Recompute these (entity, period start, month start) keys at the next recomputation
        (e.g. every stored period, after a catalogue change: ``recompute.py``)."""
        if grain in self._dirty:
            self._dirty[grain].update({(entity, period): month for entity, period, month in keys})

    async def _mark_subjects(self, rows: Sequence[Row]) -> None:
        """A fact that changes a whole subject (an observation) dirties all its periods."""
        if not self._plans:
            return
        for lookup in self.plan.subject_lookups:
            column = self.plan.domain.index(lookup.column)
            subjects = sorted(
                {
                    (row[self._entity], row[self._subject])
                    for row in rows
                    if row[column] in lookup.values
                }
            )
            for part in chunks(subjects, self._config.query_keys):
                found = await self._store.query(
                    "subject periods", self._compiler.subject_buckets(part)
                )
                for entity, hour, day, month in found:
                    starts = {"HOUR": hour, "DAY": day, "MONTH": month}
                    for grain, keys in self._dirty.items():
                        keys[(entity, starts[grain])] = month

    def reset(self) -> None:
        """Partitions were reassigned: held KPI states and remembered values may be stale, and
        the messages stored and not flushed yet come again from the committed offsets."""
        self.generation += 1
        self._held = []
        if self._incremental is not None:
            self._incremental.reset()
        self._term_values.clear()
        for values in self._recomputed:
            values.clear()

    # --- steps 4-5: KPIs and release ---------------------------------------------------------

    def _recompute_pending(self) -> bool:
        # A recomputation under way may hold keys of messages flushed meanwhile: those wait
        # for the next one too.
        return self._recomputing or any(self._dirty.values()) or self._deferred()

    def _deferred(self) -> bool:
        return self._incremental is not None and self._incremental.deferred

    def flush_due(self) -> bool:
        if not self._held:
            return False
        incremental = self._incremental is not None and self._incremental.pending
        if not incremental and not (self._terms is not None and self._terms.pending):
            return True  # nothing to compute: acknowledge at once
        return self._monotonic() - self._last_flush >= self._config.kpi_interval_s

    async def flush(self) -> Released:
        """Bring the incremental KPIs and the terms up to the held messages, write and publish
        what changed; acknowledge those messages. One flush at a time."""
        held, self._held = self._held, []  # no await before: later batches wait for the next
        self._last_flush = self._monotonic()
        computed_at = int(self._wall())
        started = time.perf_counter()
        computes = (self._incremental is not None and self._incremental.pending) or (
            self._terms is not None and self._terms.pending
        )
        if self._incremental is not None:
            await self._write(await self._incremental.flush(computed_at), computed_at)
        if self._terms is not None:
            await self._write_terms(await self._terms.flush(computed_at), computed_at)
        if computes:
            PROCESSOR_KPI_FLUSH_SECONDS.labels(self.plan.domain.name).observe(
                time.perf_counter() - started
            )
        ends: dict[tuple[str, int], int] = {}
        for message in held:
            key = (message.topic, message.partition)
            ends[key] = max(ends.get(key, 0), message.offset + 1)
        if self._recompute_pending() or self._awaiting:
            for key, end in ends.items():  # committed once the recomputation covered them
                self._awaiting[key] = max(self._awaiting.get(key, 0), end)
            return Released(held)
        return Released(held, ends)

    def recompute_due(self) -> bool:
        if not any(self._dirty.values()) and not self._awaiting and not self._deferred():
            return False
        now = self._monotonic()
        idle = not self._held and now - self._last_batch >= self._config.kpi_interval_s
        return idle or now - self._last_recompute >= self._config.recompute_every_s

    async def recompute(self) -> Released:
        """Write the slices the flushes deferred, recompute the dirty keys from the facts, write
        and publish what changed; release the offsets flushed before it started. Runs beside
        flushes (its own loop and connection): a long pass over a month of facts must not hold
        the incremental KPIs back."""
        computed_at = int(self._wall())
        # Taken with the dirty keys and the offsets, before any await: every message flushed
        # before this point has its slices here.
        deferred = self._incremental.take_deferred(computed_at) if self._incremental else ()
        dirty, self._dirty = self._dirty, {grain: {} for grain in self._grains}
        ends, self._awaiting = self._awaiting, {}
        self._last_recompute = self._monotonic()
        self._recomputing = True
        try:
            await self._write(deferred, computed_at, self._recompute_store)
            for (plan, compiler), written in zip(self._plans, self._recomputed, strict=True):
                await self._recompute(plan, compiler, written, dirty, computed_at)
        finally:
            self._recomputing = False
        return Released((), ends)

    async def close_periods(self, since: dt.date | None = None) -> None:
        """Take the snapshots of newly closed periods (run by the flushing loop when idle, so
        never beside a flush on the same connection); with ``since``, retake every closed
        period from then (``recompute.py``)."""
        if self._terms is None:
            return
        due = self._monotonic() - self._last_close >= self._config.period_close_interval_s
        if since is None and not due:
            return
        self._last_close = self._monotonic()
        computed_at = int(self._wall())
        await self._write_terms(await self._terms.close_periods(computed_at, since), computed_at)
        await self._terms.record_closes()

    async def _recompute(
        self,
        plan: KpiPlan,
        compiler: SqlCompiler,
        written: LastValues[RecordKey, tuple[Any, ...]],
        dirty: dict[str, dict[PeriodKey, int]],
        computed_at: int,
    ) -> None:
        """Recompute one plan's KPIs of the dirty keys; write and publish them query by query,
        only for the slices whose aggregates changed since they were last written (a pass
        recomputes every slice of a touched period; most of them did not move)."""
        for grain, keys in dirty.items():
            if grain not in plan.grains or not keys:
                continue
            started = time.perf_counter()
            # By entity: a query's keys then cover a contiguous range of entities, so it reads
            # only their granules, and smaller queries (less memory) read no more in all.
            for part in chunks(sorted(keys.items()), self._config.query_keys):
                sql = compiler.recompute(grain, [k for k, _ in part], {m for _, m in part})
                records = await self._recompute_store.query(f"recompute {grain}", sql)
                # A record is (entity, period, channel, service, n_events, *aggregates): the KPI
                # values follow from the aggregates alone.
                moved = [
                    (key, aggregates, record)
                    for record in records
                    if written.changed(key := _record_key(grain, record), aggregates := record[5:])
                ]
                rows = _versioned(plan, grain, records, [r for _, _, r in moved], computed_at)
                await self._write(rows, computed_at, self._recompute_store)
                written.remember([(key, aggregates) for key, aggregates, _ in moved])
            PROCESSOR_KPI_SECONDS.labels(plan.domain.name, grain).observe(
                time.perf_counter() - started
            )

    async def _write(
        self,
        versioned: Iterable[tuple[KpiRow, int]],
        computed_at: int,
        store: Store | None = None,
    ) -> None:
        """Write and publish KPI rows, WRITE_ROWS at a time: a pass over every entity never
        holds all its KPI rows at once."""
        rows = iter(versioned)
        while part := list(islice(rows, WRITE_ROWS)):
            await self._write_part(part, computed_at, store or self._kpi_store)

    async def _write_terms(self, versioned: Sequence[tuple[KpiRow, int]], computed_at: int) -> None:
        """The term tracker's rows that changed since last written (it reports every KPI of the
        slices it touched)."""
        fresh = [(r, v) for r, v in versioned if self._term_values.changed(r.key, r.measured)]
        await self._write(fresh, computed_at)
        self._term_values.remember([(r.key, r.measured) for r, _ in fresh])

    async def _write_part(
        self, versioned: list[tuple[KpiRow, int]], computed_at: int, store: Store
    ) -> None:
        rows = [r for r, _ in versioned]
        versions = [v for _, v in versioned]
        await store.insert_kpis(rows, versions, computed_at)
        published = [
            (r, v)
            for r, v in versioned
            if self._config.publish_slices or (r.channel == ALL and r.service_id == ALL)
        ]
        await self._outputs.publish_kpis(
            [r for r, _ in published], [v for _, v in published], computed_at
        )
        for grain, count in Counter(r.grain for r in rows).items():
            PROCESSOR_KPI_ROWS.labels(grain).inc(count)


def _record_key(grain: str, record: Sequence[Any]) -> RecordKey:
    # Interned: a national pass remembers 200,000 keys, each with its own copies of the same
    # few thousand names otherwise (a third of what ``LastValues`` holds).
    entity, period, channel, service = record[:4]
    return grain, sys.intern(entity), int(period), sys.intern(channel), sys.intern(service)


def _versioned(
    plan: KpiPlan,
    grain: str,
    records: Sequence[tuple[Any, ...]],
    chosen: Sequence[tuple[Any, ...]],
    computed_at: int,
) -> Iterator[tuple[KpiRow, int]]:
    """The KPI rows of ``chosen`` records of one recompute query, each with its period's
    version (from the period's all/all record, which may come anywhere in ``records``)."""
    versions = {
        (entity, int(period)): kpi_version(n_events, computed_at)
        for entity, period, channel, service, n_events, *_ in records
        if channel == ALL and service == ALL
    }
    for entity, period, channel, service, _, *values in chosen:
        key = SliceKey(entity, grain, int(period), channel, service)
        for row in plan.finalize(key, values):
            yield row, versions[(entity, int(period))]
