"""The incremental KPI engine on a current ClickHouse engine (chdb) equals the Python reference.

A synthetic stream goes through ``IncrementalKpis`` in batches, with duplicated messages, a
process that dies and replays from an earlier offset with nothing in memory, and a state bound so
small that periods are evicted and rebuilt: the last value written for every KPI must be the
reference's over the same facts. The same engine runs on the 18.16 server in the integration
tests (the processor's default engine).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_processor.adapters.kpi_sql import TOUCHED, TOUCHED_STRUCTURE, SqlCompiler, Touched, literal
from pcm_processor.domain.buckets import BUCKET_COLUMNS, BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position, Row
from pcm_processor.domain.kpis import KpiPlan, KpiRow, build_plan
from pcm_processor.domain.reference import reference_kpis
from pcm_processor.domain.registry import (
    ATTENTION,
    COMPLAINT,
    PROCEDURE_STAGE,
    SURVEY_COLLECTION,
    FactDomain,
)
from pcm_processor.domain.states import StateStore
from pcm_processor.incremental import IncrementalKpis
from pcm_testkit.events import local_time
from pcm_testkit.generator import Generator
from prometheus_client import REGISTRY

from tests.chdb_executor import ChdbExecutor
from tests.unit.crafted import assert_same

CLOCK = BucketClock("America/Lima")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbExecutor]:
    executor = ChdbExecutor(tmp_path_factory.mktemp("chdb"))
    yield executor
    executor.close()


class ChdbStore:
    """The ``Store`` the engine queries, on chdb."""

    def __init__(self, engine: ChdbExecutor, database: str) -> None:
        self.engine = engine
        self.database = database
        self.queries: list[str] = []

    async def query(self, what: str, sql: str, touched: Touched = ()) -> list[tuple[Any, ...]]:
        """As ClickHouse with external data: the ``TOUCHED`` rows in a table of that name."""
        self.queries.append(what)
        if TOUCHED in sql:
            columns = ", ".join(f"{name} {kind}" for name, kind in TOUCHED_STRUCTURE)
            self.engine.execute(f"DROP TABLE IF EXISTS {TOUCHED}")
            self.engine.execute(f"CREATE TABLE {TOUCHED} ({columns}) ENGINE = Memory")
            values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in touched)
            self.engine.execute(f"INSERT INTO {TOUCHED} VALUES {values}")
        return self.engine.execute(sql)

    def insert(self, domain: FactDomain, rows: Sequence[Row]) -> None:
        values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
        self.engine.execute(
            f"INSERT INTO {self.database}.{domain.table} ({', '.join(domain.columns)}) "
            f"VALUES {values}"
        )


def messages(catalogues: Catalogues, domain: FactDomain, seed: int) -> list[Row]:
    """Fact rows of a stream across a day and a month end, 3% of messages sent twice (a later
    offset, the same event)."""
    generator = Generator(catalogues, seed=seed, entities=4, run_id=f"inc-{domain.name}")
    subjects = 300 if domain is ATTENTION else 120
    produced = generator.stream(domain.name, subjects, local_time(2025, 1, 31, 20), 8 * 3600)
    rng = random.Random(seed)
    for index in sorted(rng.sample(range(len(produced)), len(produced) * 3 // 100)):
        produced.insert(min(index + rng.randint(1, 40), len(produced)), produced[index])
    ctx = MappingContext(CatalogueView.of(catalogues), CLOCK)
    return [domain.map(p.envelope, Position(0, offset), ctx) for offset, p in enumerate(produced)]


class Process:
    """One processor incarnation: its own states, flushing what it stored batch by batch."""

    def __init__(
        self,
        plan: KpiPlan,
        store: ChdbStore,
        max_slices: int,
        build_store: ChdbStore | None = None,
    ) -> None:
        self.store = store
        self.engine = IncrementalKpis(
            plan,
            SqlCompiler(plan, store.database),
            store,
            StateStore(max_slices),
            CLOCK,
            query_keys=25,
            query_subjects=25,  # a period's subjects span several queries
            build_store=build_store,
        )
        self.written: dict[Any, tuple[int, KpiRow]] = {}

    def consume(self, batch: Sequence[Row], now: int) -> None:
        """Store and flush a batch: its entity-level values are written."""
        self.store.insert(self.engine.plan.domain, batch)
        self.engine.touch(batch)
        self._write(asyncio.run(self.engine.flush(now)))

    def commit(self, now: int) -> None:
        """What the pipeline does before it releases offsets: write the deferred slices."""
        self._write(self.engine.take_deferred(now))

    def _write(self, rows: Iterable[tuple[KpiRow, int]]) -> None:
        for row, version in rows:
            # kpi_values keeps the highest version (then the latest write) per key.
            current = self.written.get(row.key)
            if current is None or version >= current[0]:
                self.written[row.key] = (version, row)


def last_values(processes: Sequence[Process]) -> dict[Any, KpiRow]:
    merged: dict[Any, tuple[int, KpiRow]] = {}
    for process in processes:
        for key, (version, row) in process.written.items():
            if key not in merged or version >= merged[key][0]:
                merged[key] = (version, row)
    return {key: row for key, (_, row) in merged.items()}


@pytest.mark.parametrize(
    "domain", [ATTENTION, PROCEDURE_STAGE, COMPLAINT, SURVEY_COLLECTION], ids=lambda d: d.name
)
def test_batches_with_a_crash_replay_and_evictions_give_the_reference(
    engine: ChdbExecutor, catalogues: Catalogues, domain: FactDomain
) -> None:
    database = f"inc_{domain.name}"
    migrate(engine, database)
    store = ChdbStore(engine, database)
    plan, _ = build_plan(domain, catalogues).split()
    assert plan.kpis
    rows = messages(catalogues, domain, seed=31)
    size = len(rows) // 12 + 1
    batches = [rows[start : start + size] for start in range(0, len(rows), size)]
    crash = len(batches) // 2
    now = 1_741_600_000
    # The first process dies after storing (not flushing) batch ``crash``; its offsets since
    # batch ``crash - 3`` were not committed (their deferred slices never written), so the next
    # one consumes them again.
    started_empty = _states_started_empty(domain)
    first = Process(plan, store, max_slices=10_000)
    for index, batch in enumerate(batches[:crash]):
        first.consume(batch, now)
        if index < crash - 3:
            first.commit(now)
    store.insert(domain, batches[crash])
    # Tiny: periods evicted and rebuilt; built beside the deltas, on a second connection.
    builds = ChdbStore(engine, database)
    second = Process(plan, store, max_slices=40, build_store=builds)
    for index, batch in enumerate(batches[crash - 3 :]):
        second.consume(batch, now + 5)
        if index == 2:
            second.engine.reset()  # partitions reassigned to it again: states dropped
        if index % 2:
            second.commit(now + 5)
    second.commit(now + 5)
    finest = plan.grains[0]
    assert "delta" in store.queries and "stored periods" in store.queries
    # After the crash, a reset and evictions: periods with facts before the batch are built
    # beside the deltas; the others (the first process's, new hours) start from their batch.
    assert f"build {finest}" in builds.queries and "stored periods" in builds.queries
    assert _states_started_empty(domain) > started_empty
    assert_same(reference_kpis(plan, rows), last_values([first, second]))


def test_history_loaded_at_offset_zero_counts_before_the_first_message(
    engine: ChdbExecutor, catalogues: Catalogues
) -> None:
    """Facts loaded straight into ClickHouse at offset 0 (a backfill of history, as the
    national bench loads its year) are in the state of a process whose first message of the
    entity is at offset 0 too."""
    database = "inc_backfill"
    migrate(engine, database)
    store = ChdbStore(engine, database)
    plan, _ = build_plan(ATTENTION, catalogues).split()
    rows = messages(catalogues, ATTENTION, seed=7)  # from Jan 31, 20:00, offsets from 0
    generator = Generator(catalogues, seed=7, entities=4, run_id="inc-history")  # same entities
    produced = generator.stream(ATTENTION.name, 100, local_time(2025, 1, 31, 8), 12 * 3600)
    ctx = MappingContext(CatalogueView.of(catalogues), CLOCK)
    history = [ATTENTION.map(p.envelope, Position(0, 0), ctx) for p in produced]
    store.insert(ATTENTION, history)
    process = Process(plan, store, max_slices=10_000)
    process.consume(rows, 1_741_600_000)
    process.commit(1_741_600_000)
    # The periods of the live rows, which hold history too (January's day and month).
    touched = {
        (row[0], grain, row[ATTENTION.index(BUCKET_COLUMNS[grain])])
        for row in rows
        for grain in plan.grains
    }
    expected = {
        key: row
        for key, row in reference_kpis(plan, history + rows).items()
        if (key[0], key[2], key[3]) in touched
    }
    assert expected != reference_kpis(plan, rows)
    assert_same(expected, last_values([process]))


def test_messages_brought_again_below_the_watermark_change_nothing(
    engine: ChdbExecutor, catalogues: Catalogues
) -> None:
    """Messages of an entity brought again below its watermark: here, batches of an earlier
    assignment flushed after the reset, then the same messages from the committed offset (the
    runner now drops such batches; the engine must not depend on it). A flush must not move a
    watermark back: the states hold the facts above it, which the next delta would add again
    (the national fault test's doubled tickets)."""
    database = "inc_redelivered"
    migrate(engine, database)
    store = ChdbStore(engine, database)
    plan, _ = build_plan(ATTENTION, catalogues).split()
    rows = messages(catalogues, ATTENTION, seed=13)
    size = len(rows) // 10 + 1
    batches = [rows[start : start + size] for start in range(0, len(rows), size)]
    now = 1_741_600_000
    process = Process(plan, store, max_slices=10_000)
    for index, batch in enumerate(batches[:6]):
        process.consume(batch, now)
        if index < 3:
            process.commit(now)
    process.engine.reset()  # reassigned: the same partition, states dropped
    for batch in batches[6:8] + batches[3:]:  # fetched before the reset, then from the commit
        process.consume(batch, now + 5)
    process.commit(now + 5)
    assert_same(reference_kpis(plan, rows), last_values([process]))


def _states_started_empty(domain: FactDomain) -> float:
    value = REGISTRY.get_sample_value(
        "pcm_processor_kpi_states_started_empty_total", {"domain": domain.name}
    )
    return value or 0.0


def test_an_observation_after_the_resolution_changes_the_resolution_period(
    engine: ChdbExecutor, catalogues: Catalogues
) -> None:
    """A subject-wide lookup: the OBSERVED stage arrives days after RESOLVED was counted."""
    from pcm_testkit.events import procedure_stage_event

    database = "inc_rework"
    migrate(engine, database)
    store = ChdbStore(engine, database)
    plan, _ = build_plan(PROCEDURE_STAGE, catalogues).split()
    ctx = MappingContext(CatalogueView.of(catalogues), CLOCK)
    service, filed = "RENIEC_DNI_DUPLICADO", local_time(2025, 3, 3, 9)

    def stage(name: str, day: int, offset: int) -> Row:
        event = procedure_stage_event(
            "RENIEC", "P1", name, service, "PRESENCIAL", filed, local_time(2025, 3, day, 10)
        )
        return PROCEDURE_STAGE.map(event, Position(0, offset), ctx)

    process = Process(plan, store, max_slices=10_000)
    rows = [stage("FILED", 3, 1), stage("RESOLVED", 5, 2)]
    process.consume(rows, 1_741_600_000)
    day = ("RENIEC", "PROCEDURES_REWORKED_PCT", "DAY", local_time(2025, 3, 5), "", "")
    assert last_values([process])[day].value == 0.0
    rows.append(stage("OBSERVED", 4, 3))
    process.consume(rows[-1:], 1_741_600_100)
    assert last_values([process])[day].value == 100.0
    process.commit(1_741_600_100)
    assert_same(reference_kpis(plan, rows), last_values([process]))
