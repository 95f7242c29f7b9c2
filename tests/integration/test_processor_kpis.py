"""The processor on the real stack: hand-computed KPIs, replays, poison and a ClickHouse outage.

Each test has its own topics, database and processor subprocess (the ``run`` fixture) and sends
its own events, so any test passes alone and in any order. Each ends by checking everything it
produced against the reference computation, besides its own hand-computed assertions.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException
from kafka import KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import envelope_pb2, survey_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_processor.domain.registry import DOMAINS
from pcm_processor.settings import consumer_group
from pcm_testkit.events import (
    attention_event,
    complaint,
    enveloped,
    local_time,
    procedure_stage_event,
    survey_collection,
    survey_response,
)
from pcm_testkit.generator import LIMA, Generator
from pcm_testkit.isolation import isolated
from pcm_testkit.kafka import as_records, committed_offsets, produce
from pcm_testkit.kpis import differences, expected_kpis, read_kpis, stream_kpi_codes
from pcm_testkit.metrics import metric_value, scrape
from pcm_testkit.processor import ProcessorProcess, caught_up, processor_for
from pcm_testkit.waiting import wait_until

pytestmark = pytest.mark.integration
# The `stack` fixture (tests/conftest.py) is a LocalStack; conftest modules are not importable.
LocalStack = Any

SERVICE = "RENIEC_DNI_DUPLICADO"  # 20 min target wait, 7 business days legal term
HOUR9 = local_time(2025, 3, 10, 9)
DAY10 = local_time(2025, 3, 10)
MARCH = local_time(2025, 3, 1)


def t(hour: int, minute: int, day: int = 10) -> int:
    return local_time(2025, 3, day, hour, minute)


@dataclass
class Run:
    """One test's topics, database and processor, and every envelope the test produced."""

    settings: Settings
    processor: ProcessorProcess
    ch: Client
    produced: dict[str, list[envelope_pb2.EventEnvelope]] = field(
        default_factory=lambda: {name: [] for name in DOMAINS}
    )

    @property
    def db(self) -> str:
        return self.settings.clickhouse_database

    def topic(self, domain: str) -> str:
        return topic_for_domain(domain).name(self.settings.topic_prefix)

    def send(self, domain: str, envelopes: list[envelope_pb2.EventEnvelope]) -> None:
        self.produced[domain] += envelopes
        produce(self.settings.kafka_bootstrap, self.topic(domain), as_records(envelopes))

    def caught_up(self, timeout_s: float = 90) -> None:
        caught_up(self.settings, self.processor, timeout_s)

    def kpi(
        self, code: str, grain: str, period: int, channel: str = "", service: str = ""
    ) -> float | None:
        key = ("RENIEC", code, grain, period, channel, service)
        found = read_kpis(self.ch, self.db).get(key)
        return None if found is None else found[0]

    def reference_problems(self, catalogues: Catalogues) -> list[str]:
        """Differences between ClickHouse's KPIs and the reference over all this run sent."""
        return differences(
            expected_kpis(catalogues, self.produced),
            read_kpis(self.ch, self.db, stream_kpi_codes(catalogues)),
        )


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    with (
        isolated("kpis") as settings,
        processor_for(settings, tmp_path, processor_kpi_interval_s="0.5") as processor,
    ):
        yield Run(settings, processor, connect(settings, database="default"))


def known_events() -> tuple[list[envelope_pb2.EventEnvelope], list[envelope_pb2.EventEnvelope]]:
    """Four tickets (waits 600, 1800 and 120 s, one abandoned) and two procedures."""
    a, p = attention_event, procedure_stage_event
    tickets = [
        a("RENIEC", "T1", "TICKET_ISSUED", SERVICE, "PRESENCIAL", t(9, 0)),
        a("RENIEC", "T1", "TICKET_CALLED", SERVICE, "PRESENCIAL", t(9, 0), t(9, 10)),
        a("RENIEC", "T1", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(9, 0), t(9, 10), t(9, 15)),
        a(
            "RENIEC",
            "T2",
            "TICKET_SERVED",
            SERVICE,
            "PRESENCIAL",
            t(9, 5),
            t(9, 35),
            t(9, 45),
            preferential=True,
        ),
        a("RENIEC", "T3", "TICKET_SERVED", SERVICE, "VIRTUAL", t(9, 20), t(9, 22), t(9, 30)),
        a(
            "RENIEC",
            "T4",
            "TICKET_ABANDONED",
            "ORIENTACION",
            "PRESENCIAL",
            t(9, 30),
            finished=t(9, 50),
        ),
    ]
    filed = t(10, 0)
    procedures = [
        p("RENIEC", "P1", "FILED", SERVICE, "PRESENCIAL", filed, filed),
        p("RENIEC", "P1", "RESOLVED", SERVICE, "PRESENCIAL", filed, t(9, 0, day=19), 2),
        p("RENIEC", "P2", "FILED", SERVICE, "VIRTUAL", filed, filed),
        p("RENIEC", "P2", "OBSERVED", SERVICE, "VIRTUAL", filed, t(9, 0, day=12), 2),
        p("RENIEC", "P2", "RESUBMITTED", SERVICE, "VIRTUAL", filed, t(9, 0, day=13), 3),
        p("RENIEC", "P2", "RESOLVED", SERVICE, "VIRTUAL", filed, t(9, 0, day=24), 4),
    ]
    return tickets, procedures


def send_known_events(run: Run) -> None:
    tickets, procedures = known_events()
    run.send("attention", tickets)
    run.send("procedure_stage", procedures)
    run.caught_up()


def test_known_events_give_the_hand_computed_kpis(run: Run, catalogues: Catalogues) -> None:
    send_known_events(run)
    kpi = run.kpi

    def hour(code: str) -> float | None:
        return kpi(code, "HOUR", HOUR9)

    assert hour("ATTENTIONS") == 3
    assert hour("WAIT_MEAN_S") == 840  # (600 + 1800 + 120) / 3
    assert hour("WAIT_P90_S") == 1800
    assert hour("SERVED_WITHIN_TARGET_PCT") == pytest.approx(200 / 3, abs=1e-9)  # 1800 s > 20 min
    assert hour("SERVICE_MEAN_S") == 460  # (300 + 600 + 480) / 3
    assert hour("ABANDONMENT_PCT") == 25  # 1 of 4 closed tickets
    assert kpi("PREFERENTIAL_SHARE_PCT", "DAY", DAY10) == pytest.approx(100 / 3)
    # Served tickets and procedures filed: 2 of 5 online (T3 virtual, P2 filed online).
    assert kpi("DIGITAL_TAKEUP_PCT", "MONTH", MARCH) == pytest.approx(40.0)
    assert kpi("ACTIVE_CHANNELS", "DAY", DAY10) == 2
    assert kpi("CHANNEL_LEVEL", "DAY", DAY10) == 2  # presencial + virtual: intermedio
    assert kpi("WAIT_MEAN_S", "HOUR", HOUR9, channel="PRESENCIAL") == 1200
    assert kpi("ABANDONMENT_PCT", "DAY", DAY10, "PRESENCIAL", "ORIENTACION") == 100
    # Procedures: P1 resolved on its due date (7 business days); P2 due a day later (the day it
    # waited on the citizen does not count), resolved on the 24th: late.
    day19, day20, day24 = local_time(2025, 3, 19), local_time(2025, 3, 20), local_time(2025, 3, 24)
    assert kpi("PROCEDURES_FILED", "DAY", DAY10) == 2
    assert kpi("PROCEDURES_WITHIN_TERM_PCT", "DAY", day19) == 100
    assert kpi("PROCEDURES_WITHIN_TERM_PCT", "DAY", day20) == 0
    assert kpi("PROCEDURES_WITHIN_TERM_PCT", "MONTH", MARCH) == 50
    assert kpi("PROCEDURES_REWORKED_PCT", "DAY", day24) == 100
    assert kpi("PROCEDURES_REWORKED_PCT", "MONTH", MARCH) == 50
    assert kpi("PROCEDURES_FINISHED", "MONTH", MARCH) == 2
    assert not run.reference_problems(catalogues)


def latest_published_kpis(
    run: Run, wanted: tuple[str, int, int]
) -> dict[tuple[str, int, int], envelope_pb2.EventEnvelope]:
    """The newest version of each (code, grain, period) on the KPI topic, read until ``wanted``
    is there and the topic has nothing more to give."""
    topic = run.topic("kpi_value")
    consumer = KafkaConsumer(bootstrap_servers=run.settings.kafka_bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    latest: dict[tuple[str, int, int], envelope_pb2.EventEnvelope] = {}

    def drained() -> bool:
        fetched = consumer.poll(timeout_ms=500, max_records=100_000)
        for records in fetched.values():
            for record in records:
                envelope = envelope_pb2.EventEnvelope.FromString(record.value)
                value = envelope.kpi_value
                key = (value.kpi_code, value.grain, value.period_start.seconds)
                if key not in latest or latest[key].kpi_value.version < value.version:
                    latest[key] = envelope
        return wanted in latest and not fetched

    try:
        wait_until(drained, 30, f"{wanted} never published on {topic}", interval_s=0)
    finally:
        consumer.close()
    return latest


def test_kpis_are_published_on_the_kpi_topic(run: Run) -> None:
    send_known_events(run)
    latest = latest_published_kpis(run, ("WAIT_MEAN_S", 1, HOUR9))  # GRAIN_HOUR
    wait = latest[("WAIT_MEAN_S", 1, HOUR9)]
    assert wait.entity_id == "RENIEC" and wait.source == "/platform/pcm-processor"
    assert (wait.kpi_value.value, wait.kpi_value.numerator, wait.kpi_value.denominator) == (
        840,
        2520,
        3,
    )
    assert wait.kpi_value.unit == "seconds"


def test_replaying_the_same_events_changes_no_kpi(run: Run, catalogues: Catalogues) -> None:
    send_known_events(run)
    before = read_kpis(run.ch, run.db)
    tickets, procedures = known_events()
    run.send("attention", tickets[::-1])  # same events, reversed
    run.send("procedure_stage", procedures)
    run.caught_up()
    assert read_kpis(run.ch, run.db) == before
    assert run.ch.execute(f"SELECT count() FROM {run.db}.attention_events FINAL") == [(6,)]
    assert not run.reference_problems(catalogues)


def test_an_observation_arriving_after_the_resolution_marks_it_reworked(
    run: Run, catalogues: Catalogues
) -> None:
    filed, resolved = t(11, 0, day=11), t(12, 0, day=14)
    day14 = local_time(2025, 3, 14)
    p = procedure_stage_event
    run.send(
        "procedure_stage",
        [
            p("RENIEC", "P3", "FILED", SERVICE, "PRESENCIAL", filed, filed),
            p("RENIEC", "P3", "RESOLVED", SERVICE, "PRESENCIAL", filed, resolved, 3),
        ],
    )
    run.caught_up()
    assert run.kpi("PROCEDURES_REWORKED_PCT", "DAY", day14) == 0
    late = p("RENIEC", "P3", "OBSERVED", SERVICE, "PRESENCIAL", filed, t(12, 0, day=12), 2)
    run.send("procedure_stage", [late])
    run.caught_up()
    assert run.kpi("PROCEDURES_REWORKED_PCT", "DAY", day14) == 100
    assert not run.reference_problems(catalogues)


def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_processed(
    run: Run, catalogues: Catalogues
) -> None:
    s = run.settings
    future = attention_event(
        "RENIEC", "T7", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 5), t(15, 9)
    )
    future.schema_version = 7
    wrong = procedure_stage_event(
        "RENIEC", "P9", "FILED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 0)
    )
    unknown = attention_event(
        "RENIEC", "T8", "TICKET_SERVED", "NO_SUCH", "PRESENCIAL", t(15, 0), t(15, 5), t(15, 9)
    )
    good = attention_event(
        "RENIEC", "T9", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 2), t(15, 9)
    )
    topic = run.topic("attention")
    poison = [
        (b"RENIEC", b""),
        (b"RENIEC", b"\x08\x96\x01 not an envelope \xff"),
        (b"RENIEC", future.SerializeToString()),
        (b"RENIEC", wrong.SerializeToString()),
        (b"RENIEC", unknown.SerializeToString()),
    ]
    produce(s.kafka_bootstrap, topic, [*poison, (b"RENIEC", good.SerializeToString())])
    run.produced["attention"].append(good)
    run.caught_up()
    assert run.kpi("WAIT_MEAN_S", "HOUR", local_time(2025, 3, 10, 15)) == 120

    consumer = KafkaConsumer(
        run.topic("dead_letter"),
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    dead = list(consumer)
    consumer.close()
    reasons = [dict(m.headers)["reason"].decode() for m in dead]
    assert reasons == [
        "empty",
        "undecodable",
        "unknown_schema_version",
        "wrong_payload",
        "unknown_service",
    ]
    assert [m.value or b"" for m in dead] == [value for _, value in poison]
    assert all(m.key == b"RENIEC" for m in dead)
    assert {dict(m.headers)["source_topic"].decode() for m in dead} == {topic}
    metrics = scrape(run.processor.metrics_url)
    assert metric_value(metrics, "pcm_processor_dead_letter_total") == 5
    assert not run.reference_problems(catalogues)


def test_metrics_show_lag_per_partition_freshness_and_batches(run: Run) -> None:
    send_known_events(run)
    caught_up_at = time.time()
    topic = run.topic("attention")

    def refreshed_since_caught_up() -> str | None:
        page = scrape(run.processor.metrics_url)
        refreshed = metric_value(page, "pcm_processor_lag_refreshed_timestamp_seconds")
        return page if refreshed >= caught_up_at else None

    page = wait_until(
        refreshed_since_caught_up, 30, "no lag refresh after catching up", ignore=(OSError,)
    )
    lags = [line for line in page.splitlines() if line.startswith("pcm_processor_consumer_lag{")]
    assert len([line for line in lags if f'topic="{topic}"' in line]) == 6  # one per partition
    assert metric_value(page, "pcm_processor_consumer_lag") == 0
    freshness = metric_value(page, "pcm_processor_freshness_seconds")
    assert freshness > 0  # now - newest event time written (March 2025 events here)
    assert metric_value(page, "pcm_processor_batch_size_count") >= 1
    assert metric_value(page, "pcm_processor_insert_seconds_count", {"table": "kpi_values"}) >= 1
    assert metric_value(page, "pcm_processor_kpi_rows_total") > 0


def stable_commits(run: Run) -> dict[TopicPartition, int]:
    """The group's committed offsets (maybe none yet) once two reads a commit interval (1 s)
    apart agree: what was released before ClickHouse went down has been committed by then."""
    group = consumer_group(run.settings.topic_prefix)
    reads: list[dict[TopicPartition, int]] = []

    def unchanged() -> bool:
        reads.append(committed_offsets(run.settings.kafka_bootstrap, group))
        return len(reads) > 1 and reads[-1] == reads[-2]

    wait_until(unchanged, 30, "committed offsets kept moving", interval_s=1.5)
    return reads[-1]


def test_clickhouse_outage_loses_nothing_and_counts_nothing_twice(
    run: Run, stack: LocalStack, catalogues: Catalogues
) -> None:
    processor, s = run.processor, run.settings
    generator = Generator(catalogues, seed=5, entities=6, run_id="outage")
    start = local_time(2025, 5, 5, 8)
    events = [p.envelope for p in generator.stream("attention", 6_000, start, 36_000)]
    third = len(events) // 3
    # Events flow before, during and after the outage.
    before, during, after = events[:third], events[third : 2 * third], events[2 * third :]
    group = consumer_group(s.topic_prefix)

    run.send("attention", before)
    processor.wait_for_metric("pcm_processor_events_total", above=0)  # storing them
    stack.stop("clickhouse")
    try:
        run.send("attention", during)
        retries = processor.wait_for_metric("pcm_processor_insert_retries_total", above=0)
        held = stable_commits(run)
        # Five more failed attempts (about 10 s at the 2 s backoff cap) with events in hand:
        # none may commit an offset.
        processor.wait_for_metric("pcm_processor_insert_retries_total", above=retries + 4)
        assert committed_offsets(s.kafka_bootstrap, group) == held, (
            "offsets were committed while ClickHouse was down"
        )
        assert processor.alive()
    finally:
        stack.start("clickhouse")
    run.send("attention", after)
    run.caught_up(timeout_s=180)

    distinct = run.ch.execute(f"SELECT uniqExact(event_id) FROM {run.db}.attention_events")[0][0]
    assert distinct == len({e.attention.event_id for e in run.produced["attention"]})
    problems = run.reference_problems(catalogues)
    assert not problems, "\n".join(problems[:20])
    metrics = scrape(processor.metrics_url)
    assert metric_value(metrics, "pcm_processor_insert_retries_total") > 0
    topic = run.topic("attention")
    assert metric_value(metrics, "pcm_processor_events_total", {"topic": topic}) >= len(events)
    assert Path(processor.log_path).exists()


def complaint_lifecycle(
    catalogues: Catalogues, code: str, filed: int, steps: list[tuple[str, int]]
) -> list[envelope_pb2.EventEnvelope]:
    """One complaint's events as the complaints service publishes them (due date and term)."""
    filed_on = dt.datetime.fromtimestamp(filed, LIMA).date()
    due = catalogues.complaint_due("RENIEC", None, filed_on)
    made = []
    for number, (stage, at) in enumerate(steps):
        event = complaint(
            "RENIEC",
            event_id=f"{code}-{number}" if stage != "OVERDUE" else f"pcm-overdue/{code}",
            complaint_id=code,
            stage=stage,
            channel="PRESENCIAL",
            service_id="",
            driver="TIEMPO",
            filed_at=filed,
            occurred_at=at,
        )
        event.due_on, event.term_business_days = due.due_on.isoformat(), due.term_business_days
        made.append(enveloped(event))
    return made


def test_complaint_kpis_by_filing_and_by_due_date(run: Run, catalogues: Catalogues) -> None:
    filed = t(10, 0, day=3)  # Mon 3 Mar 2025
    due_on = catalogues.complaint_due("RENIEC", None, dt.date(2025, 3, 3)).due_on
    after_due = local_time(due_on.year, due_on.month, due_on.day + 1, 0, 5)
    late = local_time(due_on.year, due_on.month, due_on.day + 3, 11)
    envelopes = [
        *complaint_lifecycle(
            catalogues, "R1", filed, [("REGISTERED", filed), ("ANSWERED", t(11, 0))]
        ),
        *complaint_lifecycle(
            catalogues,
            "R2",
            filed,
            [("REGISTERED", filed), ("OVERDUE", after_due), ("ANSWERED", late)],
        ),
        *complaint_lifecycle(
            catalogues, "R3", filed, [("REGISTERED", filed), ("WITHDRAWN", t(9, 0, day=4))]
        ),
    ]
    run.send("complaint", envelopes)
    run.caught_up()
    day3, due_day = local_time(2025, 3, 3), local_time(due_on.year, due_on.month, due_on.day)
    assert run.kpi("COMPLAINTS_RECEIVED", "DAY", day3) == 3
    assert run.kpi("COMPLAINTS_RECEIVED_TIEMPO", "DAY", day3) == 3
    assert run.kpi("COMPLAINTS_RECEIVED", "DAY", day3, channel="PRESENCIAL") == 3
    # Due on the same day: R1 answered on time, R2 overdue (then late); R3 withdrawn, not due.
    assert run.kpi("COMPLAINTS_ANSWERED_WITHIN_TERM_PCT", "DAY", due_day) == 50
    to_late = catalogues.calendar.business_days_between(
        dt.date(2025, 3, 3), dt.date(due_on.year, due_on.month, due_on.day + 3), "LIMA"
    )
    mean = run.kpi("COMPLAINT_ANSWER_MEAN_BUSINESS_DAYS", "DAY", due_day)
    assert mean == pytest.approx((5 + to_late) / 2)  # R1: 5 business days (Mon 3 -> Mon 10)
    assert not run.reference_problems(catalogues)


def test_complaints_open_and_overdue_at_period_close(
    tmp_path: Path, catalogues: Catalogues
) -> None:
    """Snapshots at each closed period's end, from every complaint of the entity: R2 is open
    past its due date at the close of the due day, answered three days later; R1 answered on
    time; R3 withdrawn."""
    # Recent enough for snapshots (closed periods of the last 400 days are taken).
    filed_on = dt.date(2026, 8, 3)  # a Monday
    filed = local_time(2026, 8, 3, 10)
    due_on = catalogues.complaint_due("RENIEC", None, filed_on).due_on
    late_on = due_on + dt.timedelta(days=3)
    late = local_time(late_on.year, late_on.month, late_on.day, 11)
    overdue_at = local_time(due_on.year, due_on.month, due_on.day + 1, 0, 5)
    envelopes = [
        *complaint_lifecycle(
            catalogues, "R1", filed, [("REGISTERED", filed), ("ANSWERED", t(11, 0))]
        ),
        *complaint_lifecycle(
            catalogues,
            "R2",
            filed,
            [("REGISTERED", filed), ("OVERDUE", overdue_at), ("ANSWERED", late)],
        ),
        *complaint_lifecycle(
            catalogues, "R3", filed, [("REGISTERED", filed), ("WITHDRAWN", t(9, 0, day=4))]
        ),
    ]
    with (
        isolated("closes") as settings,
        processor_for(
            settings,
            tmp_path,
            processor_kpi_interval_s="0.5",
            processor_period_close_interval_s="1",
        ) as processor,
    ):
        produce(
            settings.kafka_bootstrap,
            topic_for_domain("complaint").name(settings.topic_prefix),
            as_records(envelopes),
        )
        ch = connect(settings, database="default")
        due_day = local_time(due_on.year, due_on.month, due_on.day)

        def value(code: str, grain: str, period: int) -> float | None:
            found = read_kpis(ch, settings.clickhouse_database).get(
                ("RENIEC", code, grain, period, "", "")
            )
            return None if found is None else found[0]

        wait_until(
            lambda: value("COMPLAINTS_OPEN_OVERDUE", "DAY", due_day) is not None,
            90,
            lambda: f"no snapshot of the due day; log: {processor.log_tail()}",
            ignore=(ServerException,),  # the processor has not created its database yet
        )
        assert value("COMPLAINTS_OPEN_OVERDUE", "DAY", due_day) == 1
        assert value("COMPLAINTS_OPEN_OVERDUE", "DAY", local_time(2026, 8, 4)) == 0
        day_before_answer = local_time(late_on.year, late_on.month, late_on.day - 1)
        assert value("COMPLAINTS_OPEN_OVERDUE", "DAY", day_before_answer) == 1
        assert (
            value(
                "COMPLAINTS_OPEN_OVERDUE",
                "DAY",
                local_time(late_on.year, late_on.month, late_on.day),
            )
            == 0
        )
        assert value("COMPLAINTS_OPEN_OVERDUE", "MONTH", local_time(2026, 8, 1)) == 0
        # 1 overdue of 3 registered in the twelve months before the close of the due month.
        found = read_kpis(ch, settings.clickhouse_database).get(
            ("RENIEC", "COMPLAINTS_OPEN_OVERDUE_PER_1000", "MONTH", local_time(2026, 9, 1), "", "")
        )
        assert found is not None and found[1:] == (0.0, 3.0)  # answered before the month closed

        def recorded() -> int:
            ((count,),) = ch.execute(
                f"SELECT count() FROM {settings.clickhouse_database}.period_closes "
                "WHERE grain LIKE 'complaint:%'"
            )
            return int(count)

        # Recorded right after the snapshot rows are written: a moment later.
        wait_until(lambda: recorded() > 0, 30, "no complaint period close recorded")


def test_survey_collection_kpis(run: Run, catalogues: Catalogues) -> None:
    """Two collections ending on 10 Mar: 75 responses of 300 offered out of 1,500 attentions."""
    end = t(17, 0)
    collections = [
        enveloped(
            survey_collection(
                "RENIEC",
                collection_id=code,
                period_start=end - 7 * 86_400,
                period_end=end,
                interactions=interactions,
                offered=offered,
                responses=responses,
            )
        )
        for code, interactions, offered, responses in (("E1", 1_000, 200, 50), ("E2", 500, 100, 25))
    ]
    run.send("survey_collection", collections)
    run.send("survey_collection", collections[:1])  # a replay changes nothing
    run.caught_up()
    assert run.kpi("SURVEY_RESPONSES", "DAY", DAY10) == 75
    assert run.kpi("SURVEY_RESPONSE_RATE_PCT", "DAY", DAY10) == 25
    assert run.kpi("RESPONSES_PER_1000_INTERACTIONS", "DAY", DAY10) == 50
    assert run.kpi("SURVEY_RESPONSES", "MONTH", MARCH) == 75
    assert not run.reference_problems(catalogues)


def answer(driver: str, score: int, status: str = "SCORED") -> survey_pb2.DriverScore:
    number = survey_pb2.AnswerStatus.Value(f"ANSWER_STATUS_{status}")
    return survey_pb2.DriverScore(driver=driver, score=score, status=number)


def test_satisfaction_kpis_per_driver_and_overall(run: Run, catalogues: Catalogues) -> None:
    """Four responses on 10 Mar, a replay, and two served tickets:

    ==========  =====  ==============  ==============  =====
    response    TIEMPO TRATO_PROFESIONAL               overall
    ==========  =====  ==============  ==============  =====
    R1          5      4                               4
    R2          2      skipped                         5
    R3          4      does not apply                  (not asked)
    R4          1      3 (older client: no status)     2
    ==========  =====  ==============  ==============  =====
    """
    given = {
        "R1": ([answer("TIEMPO", 5), answer("TRATO_PROFESIONAL", 4)], answer("", 4)),
        "R2": ([answer("TIEMPO", 2), answer("TRATO_PROFESIONAL", 0, "SKIPPED")], answer("", 5)),
        "R3": ([answer("TIEMPO", 4), answer("TRATO_PROFESIONAL", 0, "DOES_NOT_APPLY")], None),
        "R4": ([answer("TIEMPO", 1), answer("TRATO_PROFESIONAL", 3, "UNSPECIFIED")], answer("", 2)),
    }
    responses = [
        enveloped(
            survey_response(
                "RENIEC",
                response_id=code,
                collection_id="E1",
                service_id=SERVICE,
                answered_at=t(12, minute),
                scores=scores,
                overall=overall,
            )
        )
        for minute, (code, (scores, overall)) in enumerate(given.items())
    ]
    run.send("survey_response", responses)
    run.send("survey_response", responses[:2])  # a replay changes nothing
    a = attention_event
    run.send(
        "attention",
        [
            a("RENIEC", f"T{n}", "TICKET_SERVED", SERVICE, "PRESENCIAL", *at)
            for n, at in ((1, (t(9, 0), t(9, 5), t(9, 9))), (2, (t(10, 0), t(10, 2), t(10, 9))))
        ],
    )
    run.caught_up()
    expected = {
        # TIEMPO: 5, 2, 4, 1 -> the full distribution, mean 3, two of four satisfied.
        "SATISFACTION_ANSWERS_1_TIEMPO": 1,
        "SATISFACTION_ANSWERS_2_TIEMPO": 1,
        "SATISFACTION_ANSWERS_3_TIEMPO": 0,
        "SATISFACTION_ANSWERS_4_TIEMPO": 1,
        "SATISFACTION_ANSWERS_5_TIEMPO": 1,
        "SATISFACTION_MEAN_TIEMPO": 3,
        "SATISFACTION_PCT_TIEMPO": 50,
        # TRATO_PROFESIONAL: 4 and 3 valid; a skip and a "does not apply" are no low scores.
        "SATISFACTION_MEAN_TRATO_PROFESIONAL": 3.5,
        "SATISFACTION_PCT_TRATO_PROFESIONAL": 50,
        "SATISFACTION_SKIPPED_TRATO_PROFESIONAL": 1,
        "SATISFACTION_DOES_NOT_APPLY_TRATO_PROFESIONAL": 1,
        "SATISFACTION_ANSWERS_3_TRATO_PROFESIONAL": 1,
        # Overall: 4, 5, 2 (R3 was not asked).
        "SATISFACTION_MEAN": 11 / 3,
        "SATISFACTION_PCT": 200 / 3,
        "SATISFACTION_ANSWERS_2": 1,
        "SATISFACTION_SKIPPED": 0,
        # Four responses over two served tickets observed by the platform.
        "RESPONSES_PER_1000_ATTENTIONS": 2_000,
    }
    got = {code: run.kpi(code, "DAY", DAY10) for code in expected}
    assert got == pytest.approx(expected)
    assert run.kpi("SATISFACTION_PCT_TIEMPO", "MONTH", MARCH) == 50
    # Four valid answers are fewer than the catalogue's minimum sample: stored, flagged.
    ((flagged,),) = run.ch.execute(
        f"SELECT insufficient_sample FROM {run.db}.kpi_values FINAL "
        "WHERE entity_id = 'RENIEC' AND kpi_code = 'SATISFACTION_PCT_TIEMPO' "
        "AND grain = 'DAY' AND channel = '' AND service_id = ''"
    )
    assert flagged == 1
    # One row per question of each response, stored once despite the replay; no free text.
    ((rows, responses_stored),) = run.ch.execute(
        f"SELECT count(), uniqExact(response_id) FROM {run.db}.survey_response_events FINAL"
    )
    assert (rows, responses_stored) == (4 * (len(catalogues.drivers) + 1), 4)
    assert not run.reference_problems(catalogues)
