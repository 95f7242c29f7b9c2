"""The batch algorithm with fake stores: what is written, dead-lettered and released, when."""

from __future__ import annotations

import asyncio
import copy
from array import array
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, ClassVar

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import common_pb2, envelope_pb2, kpi_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.kafka.envelope import wrap
from pcm_processor.adapters.clickhouse import ClickHouseStore
from pcm_processor.adapters.faust_consumer import OffsetLedger
from pcm_processor.adapters.kafka import SOURCE, dead_letter_record, kpi_envelope
from pcm_processor.adapters.kpi_sql import SqlCompiler, Touched
from pcm_processor.adapters.retry import retry_forever
from pcm_processor.app import DomainRunner
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Row
from pcm_processor.domain.kpis import Agg, KpiRow, build_plan
from pcm_processor.domain.poison import DeadLetter
from pcm_processor.domain.registry import ATTENTION, PROCEDURE_STAGE, FactDomain
from pcm_processor.incremental import _moved
from pcm_processor.pipeline import (
    DomainPipeline,
    Freshness,
    Inbound,
    PipelineConfig,
    Released,
)
from pcm_testkit.events import attention_event, local_time, procedure_stage_event
from prometheus_client import REGISTRY

HOUR = local_time(2025, 3, 10, 9)
SERVICE = "RENIEC_DNI_DUPLICADO"


class FakeStore:
    """Records calls; recompute queries answer with one all/all slice per requested key."""

    def __init__(self, n_events: int = 5, failures: int = 0) -> None:
        self.facts: list[Row] = []
        self.kpis: list[tuple[KpiRow, int]] = []
        self.queries: list[str] = []
        self.n_events = n_events
        self.failures = failures
        self.subject_answer: list[tuple[Any, ...]] = []
        self.more_counted = 0  # added to every count: the facts moved the aggregates
        self.aggregates: tuple[Agg, ...] = ()  # set by make(): the plan's aggregates

    async def insert_facts(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is down")
        self.facts += rows

    async def query(self, what: str, sql: str, touched: Touched = ()) -> list[tuple[Any, ...]]:
        await asyncio.sleep(0)  # a real query suspends: other coroutines run meanwhile
        self.queries.append(what)
        if what == "subject periods":
            return self.subject_answer
        keys = sql.split("toUInt32(")[2]  # not parsed further: one answer per call is enough
        assert keys
        # A plausible value per aggregate: 3 facts, waits summing 2520, p90 1800, 2 distinct...
        plausible = {
            "count": 3,
            "sum": 2520,
            "p90": 1800,
            "max": 1380,
            "uniq": 2,
            "collect": ["PRESENCIAL", "VIRTUAL"],
        }
        plausible["count"] += self.more_counted
        values = [plausible[agg.fn] for agg in self.aggregates]
        period = HOUR if what.endswith("HOUR") else local_time(2025, 3, 10)
        if what.endswith("MONTH"):
            period = local_time(2025, 3, 1)
        return [("RENIEC", period, "", "", self.n_events, *values)]

    async def insert_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None:
        self.kpis += list(zip(rows, versions, strict=True))


class FakeOutputs:
    def __init__(self) -> None:
        self.dead: list[DeadLetter] = []
        self.published: list[tuple[KpiRow, int]] = []

    async def dead_letter(self, items: Sequence[DeadLetter]) -> None:
        self.dead += items

    async def publish_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None:
        self.published += list(zip(rows, versions, strict=True))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    catalogues: Catalogues,
    store: FakeStore,
    domain: FactDomain = ATTENTION,
    interval: float = 10.0,
    clock: Clock | None = None,
) -> tuple[DomainPipeline, FakeOutputs]:
    plan = build_plan(domain, catalogues)
    store.aggregates = plan.aggregates
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    outputs = FakeOutputs()
    pipeline = DomainPipeline(
        plan,
        ctx,
        SqlCompiler(plan, "db"),
        store,
        outputs,
        PipelineConfig(kpi_interval_s=interval),
        Freshness(),
        monotonic=clock or Clock(),
        wall=lambda: 1_741_600_000.0,
    )
    return pipeline, outputs


def message(envelope: envelope_pb2.EventEnvelope | bytes | None, offset: int) -> Inbound:
    value = (
        envelope
        if not isinstance(envelope, envelope_pb2.EventEnvelope)
        else (envelope.SerializeToString())
    )
    return Inbound("t.attention", 2, offset, b"RENIEC", value, token=offset)


def served(ticket: str) -> envelope_pb2.EventEnvelope:
    return attention_event(
        "RENIEC", ticket, "TICKET_SERVED", SERVICE, "PRESENCIAL", HOUR, HOUR + 600, HOUR + 900
    )


def test_poison_is_dead_lettered_with_its_reason_and_the_rest_stored(
    catalogues: Catalogues,
) -> None:
    store = FakeStore()
    pipeline, outputs = make(catalogues, store)
    unknown = attention_event(
        "RENIEC", "T9", "TICKET_SERVED", "NOPE", "PRESENCIAL", HOUR, HOUR + 1, HOUR + 2
    )
    batch = [
        message(served("T1"), 10),
        message(b"", 11),
        message(b"\x00garbage", 12),
        message(unknown, 13),
        message(served("T2"), 14),
    ]
    asyncio.run(pipeline.process(batch))
    assert pipeline.flush_due()  # first flush: at once
    released = asyncio.run(pipeline.flush())
    assert len(store.facts) == 2
    assert [(d.offset, d.reason) for d in outputs.dead] == [
        (11, "empty"),
        (12, "undecodable"),
        (13, "unknown_service"),
    ]
    headers = dict(dead_letter_record(outputs.dead[2]).headers)
    assert headers["reason"] == b"unknown_service"
    assert headers["source_topic"] == b"t.attention"
    assert (headers["source_partition"], headers["source_offset"]) == (b"2", b"13")
    assert (
        dead_letter_record(outputs.dead[2]).value == unknown.SerializeToString()
    )  # original bytes
    assert acked(released) == [10, 11, 12, 13, 14]
    assert not released.ends  # committed once the recomputation has covered them
    assert asyncio.run(pipeline.recompute()).ends == {("t.attention", 2): 15}


def acked(released: Released) -> list[int]:
    return [m.offset for m in released.acks]


def test_messages_are_released_only_after_their_kpis_are_written(catalogues: Catalogues) -> None:
    store = FakeStore()
    clock = Clock()
    pipeline, _ = make(catalogues, store, interval=10.0, clock=clock)
    asyncio.run(pipeline.process([message(served("T1"), 1)]))
    assert acked(asyncio.run(pipeline.flush())) == [1]
    assert pipeline.recompute_due()  # the first recomputation: at once
    assert asyncio.run(pipeline.recompute()).ends == {("t.attention", 2): 2}
    written = len(store.kpis)
    clock.now += 1
    asyncio.run(pipeline.process([message(served("T2"), 2)]))
    assert acked(asyncio.run(pipeline.flush())) == [2]  # acknowledged, not committed yet
    assert not pipeline.recompute_due()  # held until the interval has passed
    clock.now += 10
    assert pipeline.recompute_due()
    assert asyncio.run(pipeline.recompute()).ends == {("t.attention", 2): 3}
    assert len(store.facts) == 2
    assert store.queries.count("recompute HOUR") == 2
    assert written > 0


def test_events_no_kpi_reads_are_released_without_recomputing(catalogues: Catalogues) -> None:
    # Every KPI but ABANDONMENT_PCT (which counts tickets still waiting) reads only closed
    # tickets: under such a catalogue an issued ticket changes nothing.
    closed_only = copy.copy(catalogues)
    object.__setattr__(
        closed_only, "kpis", tuple(k for k in catalogues.kpis if k.code != "ABANDONMENT_PCT")
    )
    store = FakeStore()
    clock = Clock()
    pipeline, _ = make(closed_only, store, clock=clock)
    asyncio.run(pipeline.process([message(served("T1"), 1)]))
    asyncio.run(pipeline.flush())
    asyncio.run(pipeline.recompute())
    clock.now += 1
    issued = attention_event("RENIEC", "T3", "TICKET_ISSUED", SERVICE, "PRESENCIAL", HOUR)
    asyncio.run(pipeline.process([message(issued, 2)]))
    assert pipeline.flush_due()  # nothing to recompute: no need to wait for the interval
    assert asyncio.run(pipeline.flush()).ends == {("t.attention", 2): 3}
    assert not pipeline.recompute_due()
    assert store.queries.count("recompute HOUR") == 1


def written_after(
    pipeline: DomainPipeline, store: FakeStore, clock: Clock, ticket: str, offset: int
) -> list[tuple[KpiRow, int]]:
    """What one served ticket, its flush and a recomputation 20 s after the last one wrote."""
    clock.now += 20
    before = len(store.kpis)
    asyncio.run(pipeline.process([message(served(ticket), offset)]))
    asyncio.run(pipeline.flush())
    asyncio.run(pipeline.recompute())
    return store.kpis[before:]


def test_versions_grow_with_the_facts_and_unchanged_values_are_not_rewritten(
    catalogues: Catalogues,
) -> None:
    store = FakeStore(n_events=5)
    clock = Clock()
    pipeline, outputs = make(catalogues, store, clock=clock)
    first = {row.key: version for row, version in written_after(pipeline, store, clock, "T1", 1)}
    assert set(first.values()) == {(5 << 32) | 1_741_600_000}
    # Entity-level values are published; slices stay in ClickHouse only (default).
    assert outputs.published and all(r.channel == r.service_id == "" for r, _ in outputs.published)
    assert written_after(pipeline, store, clock, "T1", 2) == []  # replay: same values
    envelope = envelope_pb2.EventEnvelope.FromString(
        kpi_envelope(store.kpis[0][0], store.kpis[0][1], 1_741_600_000)
    )
    assert envelope.kpi_value.version == (5 << 32) | 1_741_600_000
    assert envelope.kpi_value.unit == store.kpis[0][0].unit


def test_a_recomputation_rewrites_only_the_slices_whose_aggregates_moved(
    catalogues: Catalogues,
) -> None:
    store = FakeStore(n_events=5)
    clock = Clock()
    pipeline, _ = make(catalogues, store, clock=clock)
    assert written_after(pipeline, store, clock, "T1", 1)
    store.n_events = 6  # one more fact that no KPI's aggregates count
    assert written_after(pipeline, store, clock, "T2", 2) == []
    store.more_counted = 1
    moved = written_after(pipeline, store, clock, "T3", 3)
    assert {row.kpi_code for row, _ in moved} >= {"ATTENTIONS", "WAIT_MEAN_S", "WAIT_P90_S"}
    assert {version for _, version in moved} == {(6 << 32) | 1_741_600_000}


def test_an_observation_dirties_the_periods_of_the_whole_procedure(
    catalogues: Catalogues,
) -> None:
    store = FakeStore()
    day = local_time(2025, 3, 12)
    store.subject_answer = [("RENIEC", day + 9 * 3600, day, local_time(2025, 3, 1))]
    pipeline, _ = make(catalogues, store, domain=PROCEDURE_STAGE)
    filed = local_time(2025, 3, 10, 9)
    observed = procedure_stage_event(
        "RENIEC", "P1", "OBSERVED", SERVICE, "PRESENCIAL", filed, local_time(2025, 3, 11, 9)
    )
    asyncio.run(pipeline.process([message(observed, 1)]))
    asyncio.run(pipeline.flush())
    asyncio.run(pipeline.recompute())
    assert store.queries[0] == "subject periods"
    assert "recompute DAY" in store.queries  # the resolution day found by the lookup


def test_messages_stored_during_a_flush_wait_for_the_next_one(catalogues: Catalogues) -> None:
    """A flush releases only what was held when it started, although it runs beside inserts."""
    store = FakeStore()
    pipeline, _ = make(catalogues, store)

    async def scenario() -> tuple[list[int], list[int]]:
        await pipeline.process([message(served("T1"), 1)])
        flushing = asyncio.ensure_future(pipeline.flush())
        await asyncio.sleep(0)  # the flush took its snapshot and waits on ClickHouse
        await pipeline.process([message(served("T2"), 2)])
        first = acked(await flushing)
        second = acked(await pipeline.flush())
        return first, second

    assert asyncio.run(scenario()) == ([1], [2])


def test_failed_calls_are_retried_until_they_succeed() -> None:
    calls = []
    before = REGISTRY.get_sample_value("pcm_processor_insert_retries_total") or 0.0

    async def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("ClickHouse is down")
        return 42

    assert asyncio.run(retry_forever("insert", flaky, max_backoff_s=0.05)) == 42
    assert len(calls) == 3
    assert REGISTRY.get_sample_value("pcm_processor_insert_retries_total") == before + 2


class FakeClient:
    instances: ClassVar[list[FakeClient]] = []

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.disconnected = False
        FakeClient.instances.append(self)

    def execute(self, sql: str, data: Any = None, **options: Any) -> list[Any]:
        if self.fail:
            raise EOFError("connection reset")
        self.calls.append((sql, data, options))
        return []

    def disconnect(self) -> None:
        self.disconnected = True


def test_the_store_reconnects_and_inserts_one_columnar_batch() -> None:
    FakeClient.instances = []
    store = ClickHouseStore(lambda: FakeClient(fail=not FakeClient.instances), "db", 0.05)
    rows = [("RENIEC", "e1", 1), ("ONP", "e2", 2)]
    asyncio.run(store.insert_facts("attention_events", ("entity_id", "event_id", "n"), rows))
    broken, working = FakeClient.instances
    assert broken.disconnected
    ((sql, data, options),) = working.calls
    assert sql == "INSERT INTO db.attention_events (entity_id, event_id, n) VALUES"
    assert data == [["RENIEC", "ONP"], ["e1", "e2"], [1, 2]]
    assert options == {"columnar": True, "types_check": False}


def test_kpi_rows_are_inserted_column_by_column_with_their_versions() -> None:
    client = FakeClient(fail=False)
    store = ClickHouseStore(lambda: client, "db", 0.05, catalogue_version="kpis@7")
    rows = [
        KpiRow("RENIEC", "ATTENTIONS", "DAY", 1_741_582_800, "", "", 3.0, 3.0, 1.0, "count"),
        KpiRow(
            "ONP", "WAIT_MEAN_S", "HOUR", 1_741_615_200, "VIRTUAL", "S1", 5.5, 11.0, 2.0, "s", True
        ),
    ]
    asyncio.run(store.insert_kpis(rows, [7, 8], 1_741_600_000))
    ((sql, data, _),) = client.calls
    columns = sql.split("(")[1].split(")")[0].split(", ")
    inserted = [dict(zip(columns, values, strict=True)) for values in zip(*data, strict=True)]
    assert inserted[1] == {
        "entity_id": "ONP",
        "kpi_code": "WAIT_MEAN_S",
        "grain": "HOUR",
        "period_start": 1_741_615_200,
        "channel": "VIRTUAL",
        "service_id": "S1",
        "value": 5.5,
        "numerator": 11.0,
        "denominator": 2.0,
        "computed_at": 1_741_600_000,
        "version": 8,
        "insufficient_sample": 1,
        "catalogue_version": "kpis@7",
    }
    assert inserted[0]["insufficient_sample"] == 0 and inserted[0]["version"] == 7


def test_a_kpi_envelope_is_what_wrap_makes_of_the_value() -> None:
    """``kpi_envelope`` builds the envelope in place for speed; it must stay ``wrap``'s."""
    row = KpiRow("ONP", "WAIT_MEAN_S", "HOUR", 1_741_615_200, "VIRTUAL", "S1", 5.5, 11.0, 2.0, "s")
    value = kpi_pb2.KpiValue(
        entity_id="ONP",
        kpi_code="WAIT_MEAN_S",
        grain=common_pb2.GRAIN_HOUR,
        channel="VIRTUAL",
        service_id="S1",
        value=5.5,
        numerator=11.0,
        denominator=2.0,
        unit="s",
        version=9,
        catalogue_version="kpis@2",
    )
    value.period_start.seconds = 1_741_615_200
    value.computed_at.seconds = 1_741_600_000
    expected = wrap(value, "ONP", Timestamp(seconds=1_741_600_000), source=SOURCE)
    expected.id = "ONP/WAIT_MEAN_S/HOUR/1741615200/VIRTUAL/S1/9"
    assert kpi_envelope(row, 9, 1_741_600_000, "kpis@2") == expected.SerializeToString()


class GatedStore(FakeStore):
    """Holds every recompute query until ``release`` is set: the test decides what runs while
    a recomputation waits on ClickHouse."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def query(self, what: str, sql: str, touched: Touched = ()) -> list[tuple[Any, ...]]:
        if what.startswith("recompute"):
            self.entered.set()
            await self.release.wait()
        return await super().query(what, sql, touched)


def test_offsets_flushed_during_a_recomputation_wait_for_the_next_one(
    catalogues: Catalogues,
) -> None:
    """The running recomputation may have taken those messages' keys but not written them yet:
    committing their offsets now would lose the keys in a crash."""
    store = GatedStore()
    pipeline, _ = make(catalogues, store)

    async def scenario() -> tuple[dict[Any, int], dict[Any, int], dict[Any, int]]:
        await pipeline.process([message(served("T1"), 1)])
        await pipeline.flush()
        await pipeline.process([message(served("T2"), 2)])
        recomputing = asyncio.ensure_future(pipeline.recompute())
        # It took T2's keys too and waits on ClickHouse.
        await asyncio.wait_for(store.entered.wait(), timeout=5)
        flushed = await pipeline.flush()
        store.release.set()
        first = await recomputing
        second = await pipeline.recompute()
        return dict(flushed.ends), dict(first.ends), dict(second.ends)

    flushed, first, second = asyncio.run(scenario())
    assert flushed == {}
    assert first == {("t.attention", 2): 2}
    assert second == {("t.attention", 2): 3}


def test_moved_aggregates_are_positions_after_n_events_and_shared_between_slices() -> None:
    first = _moved(array("q", [1, 0, 3, 0, 5]))  # n_events moved too: not a KPI
    second = _moved(array("q", [0, 0, 1, 0, -2]))
    assert first == frozenset({1, 3})
    assert second is first  # one set per combination, however many slices moved that way
    assert _moved(array("q", [0, 0, 0, 0, 0])) == frozenset()


class GatedInsertStore(FakeStore):
    """Fact inserts wait while ``release`` is clear (set at first), as ``GatedStore``'s queries:
    ``entered`` when one waits, ``stored`` when one is done."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.stored = asyncio.Event()

    async def insert_facts(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        self.entered.set()
        await self.release.wait()
        await super().insert_facts(table, columns, rows)
        self.stored.set()


def test_messages_stored_before_a_reassignment_are_not_flushed(catalogues: Catalogues) -> None:
    """They come again from the committed offsets: neither those held nor a batch whose storing
    the reassignment interrupted (stored all the same) are flushed or acknowledged."""
    store = GatedInsertStore()
    pipeline, _ = make(catalogues, store)

    async def scenario() -> list[int]:
        await pipeline.process([message(served("T1"), 1)])
        store.release.clear()
        store.entered.clear()
        storing = asyncio.ensure_future(pipeline.process([message(served("T2"), 2)]))
        await asyncio.wait_for(store.entered.wait(), 5)  # inside the insert
        pipeline.reset()
        store.release.set()
        await storing
        assert not pipeline.flush_due()
        await pipeline.process([message(served("T1"), 1)])  # from the committed offset
        return acked(await pipeline.flush())

    assert asyncio.run(scenario()) == [1]
    assert len(store.facts) == 3


def fetched(envelope: envelope_pb2.EventEnvelope, offset: int) -> SimpleNamespace:
    """A message as the consumer hands a fetch to a batch sink."""
    value = envelope.SerializeToString()
    return SimpleNamespace(topic="t.attention", partition=2, offset=offset, key=b"R", value=value)


def test_batches_fetched_before_a_reassignment_are_dropped(catalogues: Catalogues) -> None:
    store = GatedInsertStore()
    pipeline, _ = make(catalogues, store)
    runner = DomainRunner(pipeline, OffsetLedger(), lambda token: None, 10, 0.05)
    offset = ATTENTION.index("kafka_offset")

    async def scenario() -> list[int]:
        await runner.submit_messages([fetched(served("T1"), 1)])
        pipeline.reset()
        await runner.submit_messages([fetched(served("T2"), 2)])
        storing = asyncio.ensure_future(runner.run())
        await asyncio.wait_for(store.stored.wait(), 5)
        storing.cancel()
        return [row[offset] for row in store.facts]

    assert asyncio.run(scenario()) == [2]
