"""Fault test: over 100,000 events streamed while the processor is SIGKILLed at random moments.

It runs twice: from a sample of 12 real entities (every hour of each busy), and from the synthetic
national registry of 2,700 entities (pcm_testkit.national, through the catalogue loader), where
most entities send a few tickets and a flush touches thousands of them.

The processor is killed at least five times (no flush, no commit, no leaving the group) and
restarted at once; meanwhile a second processor joins the group and later leaves it gracefully,
so partitions also move between live members. At the end, once the consumer group has no lag,
every KPI in ClickHouse must equal the pure-Python reference over the same events: counts
exactly, means and percents to 1e-9. Any lost batch or double-counted replay would show.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from clickhouse_driver import Client
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_testkit.events import local_time
from pcm_testkit.generator import Generator, Produced
from pcm_testkit.isolation import isolated
from pcm_testkit.kafka import produce
from pcm_testkit.kpis import differences, expected_kpis, read_kpis, stream_kpi_codes
from pcm_testkit.national import NATIONAL_ENTITIES, write_national_catalogues
from pcm_testkit.processor import ProcessorProcess, caught_up, processor_for

pytestmark = pytest.mark.integration

TICKETS = 31_000  # about 90,000 attention events
PROCEDURES = 4_500  # about 15,000 procedure stages
KILLS = 5
SEED = 20250501


@dataclass(frozen=True)
class Scale:
    """Who sends the stream: a seeded sample of ``entities`` catalogue entities, or all."""

    catalogues: Catalogues
    entities: int | None
    processor_settings: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["12-entities", f"{NATIONAL_ENTITIES}-entities"])
def scale(
    request: pytest.FixtureRequest,
    catalogues: Catalogues,
    tmp_path_factory: pytest.TempPathFactory,
) -> Scale:
    if request.param == "12-entities":
        return Scale(catalogues, entities=12)
    directory = write_national_catalogues(tmp_path_factory.mktemp("national") / "catalogues")
    # A state bound the stream passes, so periods are also evicted and rebuilt between kills.
    settings = {"catalogue_dir": str(directory), "processor_state_max_slices": "20000"}
    return Scale(load_catalogues(directory), None, settings)


@pytest.fixture
def fault_settings() -> Iterator[Settings]:
    """Topics and database of one scale's run: the runs must not see each other's KPIs."""
    with isolated("faults") as settings:
        yield settings


@pytest.fixture
def processor(
    fault_settings: Settings, scale: Scale, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessorProcess]:
    log_dir = tmp_path_factory.mktemp("faults")
    with processor_for(fault_settings, log_dir, start=False, **scale.processor_settings) as p:
        yield p


def stream(scale: Scale, rng: random.Random) -> dict[str, list[Produced]]:
    """Two days across a month end in Lima, in time order, with 1% of events sent twice."""
    generator = Generator(scale.catalogues, seed=SEED, entities=scale.entities, run_id="faults")
    start, span = local_time(2025, 4, 30, 0), 2 * 86_400
    subjects = {"attention": TICKETS, "procedure_stage": PROCEDURES}
    streams = {name: generator.stream(name, count, start, span) for name, count in subjects.items()}
    for events in streams.values():
        for index in sorted(rng.sample(range(len(events)), len(events) // 100)):
            events.insert(min(index + rng.randint(1, 500), len(events)), events[index])
    return streams


def produce_paced(settings: Settings, streams: dict[str, list[Produced]], seconds: float) -> None:
    """Both topics interleaved in chunks, spread over ``seconds`` so kills land mid-stream."""
    chunk = 2_000
    steps = max(len(events) for events in streams.values()) // chunk + 1
    for step in range(steps):
        for name, events in streams.items():
            part = events[step * chunk : (step + 1) * chunk]
            if part:
                produce(
                    settings.kafka_bootstrap,
                    topic_for_domain(name).name(settings.topic_prefix),
                    [(p.key, p.value) for p in part],
                )
        time.sleep(seconds / steps)


def test_kill_9_at_random_moments_leaves_every_kpi_exact(
    fault_settings: Settings,
    processor: ProcessorProcess,
    scale: Scale,
    clickhouse: Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    helper = ProcessorProcess.configured(
        fault_settings.topic_prefix,
        fault_settings.clickhouse_database,
        tmp_path_factory.mktemp("faults-helper") / "processor.log",
        **scale.processor_settings,
    )
    started = time.monotonic()
    rng = random.Random(SEED)
    streams = stream(scale, rng)
    total = sum(len(events) for events in streams.values())
    assert total >= 100_000

    producer = threading.Thread(target=produce_paced, args=(fault_settings, streams, 40.0))
    processor.start()
    producer.start()
    kills = 0
    while kills < KILLS or producer.is_alive():
        # Kill mid-stream: once this incarnation has stored events, at a random moment after.
        processor.wait_for_metric("pcm_processor_events_total", above=0)
        time.sleep(rng.uniform(0.0, 3.0))
        processor.kill()
        kills += 1
        processor.start()
        if kills == 2:
            helper.start()  # a second member: partitions move between live processors
        if kills == 4:
            helper.stop()  # graceful leave: another rebalance, with batches in flight
    producer.join()

    caught_up(fault_settings, processor, timeout_s=240)
    db = fault_settings.clickhouse_database
    envelopes: dict[str, list[envelope_pb2.EventEnvelope]] = {
        name: [p.envelope for p in events] for name, events in streams.items()
    }
    expected = expected_kpis(scale.catalogues, envelopes)
    problems = differences(expected, read_kpis(clickhouse, db, stream_kpi_codes(scale.catalogues)))
    assert not problems, f"{len(problems)} KPI differences:\n" + "\n".join(problems[:20])
    distinct = {
        name: len(
            {
                getattr(e, "attention" if name == "attention" else "procedure_stage").event_id
                for e in items
            }
        )
        for name, items in envelopes.items()
    }
    for name, table in (
        ("attention", "attention_events"),
        ("procedure_stage", "procedure_stage_events"),
    ):
        stored = clickhouse.execute(f"SELECT uniqExact(event_id) FROM {db}.{table}")[0][0]
        assert stored == distinct[name]
    assert kills >= KILLS and processor.starts == kills + 1
    rows = clickhouse.execute(f"SELECT count() FROM {db}.attention_events")[0][0]
    entities = len({e.entity_id for items in envelopes.values() for e in items})
    replays = rows - distinct["attention"]
    built = processor.metric("pcm_processor_kpi_state_builds_total")
    held = processor.metric("pcm_processor_kpi_state_slices")
    print(
        f"\nfault test: {total} events from {entities} entities, {kills} SIGKILLs, {replays} "
        f"attention facts stored again by replays, {len(expected)} KPI values equal to the "
        f"reference; last start: {built:.0f} periods built, {held:.0f} slices held; "
        f"{time.monotonic() - started:.0f} s"
    )
