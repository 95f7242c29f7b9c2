"""The processor on the real stack: hand-computed KPIs, replays, poison and a ClickHouse outage.

One processor subprocess serves the whole module (own topic prefix and database); the tests run
in file order and each adds events to the same topics, so the last test can check everything
produced against the reference computation.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_processor.synthetic import SyntheticStream, attention_event, local_time, procedure_event
from pcm_processor.testing import (
    ProcessorProcess,
    as_records,
    differences,
    domain_topics,
    expected_kpis,
    metric_value,
    processor_for,
    produce,
    read_kpis,
    wait_caught_up,
)

pytestmark = pytest.mark.integration
# The `stack` fixture (tests/conftest.py) is a LocalStack; conftest modules are not importable.
LocalStack = Any

SERVICE = "RENIEC_DNI_DUPLICADO"  # 20 min target wait, 7 business days legal term
HOUR9 = local_time(2025, 3, 10, 9)
DAY10 = local_time(2025, 3, 10)
MARCH = local_time(2025, 3, 1)
PRODUCED: dict[str, list[envelope_pb2.EventEnvelope]] = {"attention": [], "procedure_stage": []}


def t(hour: int, minute: int, day: int = 10) -> int:
    return local_time(2025, 3, day, hour, minute)


@pytest.fixture(scope="module")
def catalogues() -> Catalogues:
    return load_catalogues()


@pytest.fixture(scope="module")
def processor(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessorProcess]:
    directory = tmp_path_factory.mktemp("processor")
    with processor_for(isolated_settings, directory, processor_kpi_interval_s="0.5") as p:
        yield p


@pytest.fixture(scope="module")
def ch(clickhouse: Client) -> Client:
    return clickhouse


def send(settings: Settings, domain: str, envelopes: list[envelope_pb2.EventEnvelope]) -> None:
    PRODUCED[domain] += envelopes
    produce(
        settings.kafka_bootstrap,
        topic_for_domain(domain).name(settings.topic_prefix),
        as_records(envelopes),
    )


def caught_up(settings: Settings, processor: ProcessorProcess, timeout_s: float = 90) -> None:
    wait_caught_up(
        settings.kafka_bootstrap,
        f"{settings.topic_prefix}pcm-processor",
        domain_topics(settings.topic_prefix),
        timeout_s,
        processor=processor,
    )


def kpi(
    ch: Client,
    settings: Settings,
    code: str,
    grain: str,
    period: int,
    channel: str = "",
    service: str = "",
) -> float | None:
    found = read_kpis(ch, settings.clickhouse_database).get(
        ("RENIEC", code, grain, period, channel, service)
    )
    return None if found is None else found[0]


def known_events() -> tuple[list[envelope_pb2.EventEnvelope], list[envelope_pb2.EventEnvelope]]:
    """Four tickets (waits 600, 1800 and 120 s, one abandoned) and two procedures."""
    a, p = attention_event, procedure_event
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


def test_known_events_give_the_hand_computed_kpis(
    isolated_settings: Settings, processor: ProcessorProcess, ch: Client
) -> None:
    tickets, procedures = known_events()
    send(isolated_settings, "attention", tickets)
    send(isolated_settings, "procedure_stage", procedures)
    caught_up(isolated_settings, processor)
    s = isolated_settings

    def hour(code: str) -> float | None:
        return kpi(ch, s, code, "HOUR", HOUR9)

    assert hour("ATTENTIONS") == 3
    assert hour("WAIT_MEAN_S") == 840  # (600 + 1800 + 120) / 3
    assert hour("WAIT_P90_S") == 1800
    assert hour("SERVED_WITHIN_TARGET_PCT") == pytest.approx(200 / 3, abs=1e-9)  # 1800 s > 20 min
    assert hour("SERVICE_MEAN_S") == 460  # (300 + 600 + 480) / 3
    assert hour("ABANDONMENT_PCT") == 25  # 1 of 4 closed tickets
    assert kpi(ch, s, "PREFERENTIAL_SHARE_PCT", "DAY", DAY10) == pytest.approx(100 / 3)
    assert kpi(ch, s, "DIGITAL_TAKEUP_PCT", "MONTH", MARCH) == pytest.approx(100 / 3)
    assert kpi(ch, s, "ACTIVE_CHANNELS", "DAY", DAY10) == 2
    assert kpi(ch, s, "CHANNEL_LEVEL", "DAY", DAY10) == 2  # presencial + virtual: intermedio
    assert kpi(ch, s, "WAIT_MEAN_S", "HOUR", HOUR9, channel="PRESENCIAL") == 1200
    assert kpi(ch, s, "ABANDONMENT_PCT", "DAY", DAY10, "PRESENCIAL", "ORIENTACION") == 100
    # Procedures: P1 resolved in 7 business days (term 7), P2 in 10 after an observation.
    day19, day24 = local_time(2025, 3, 19), local_time(2025, 3, 24)
    assert kpi(ch, s, "PROCEDURES_FILED", "DAY", DAY10) == 2
    assert kpi(ch, s, "PROCEDURES_WITHIN_TERM_PCT", "DAY", day19) == 100
    assert kpi(ch, s, "PROCEDURES_WITHIN_TERM_PCT", "DAY", day24) == 0
    assert kpi(ch, s, "PROCEDURES_REWORKED_PCT", "DAY", day24) == 100
    assert kpi(ch, s, "PROCEDURES_REWORKED_PCT", "MONTH", MARCH) == 50
    assert kpi(ch, s, "PROCEDURES_FINISHED", "MONTH", MARCH) == 2


def test_kpis_are_published_on_the_kpi_topic(isolated_settings: Settings) -> None:
    topic = topic_for_domain("kpi").name(isolated_settings.topic_prefix)
    consumer = KafkaConsumer(bootstrap_servers=isolated_settings.kafka_bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    latest: dict[tuple[str, int, int], envelope_pb2.EventEnvelope] = {}
    for records in consumer.poll(timeout_ms=5_000, max_records=100_000).values():
        for record in records:
            envelope = envelope_pb2.EventEnvelope.FromString(record.value)
            value = envelope.kpi_value
            key = (value.kpi_code, value.grain, value.period_start.seconds)
            if key not in latest or latest[key].kpi_value.version < value.version:
                latest[key] = envelope
    consumer.close()
    wait = latest[("WAIT_MEAN_S", 1, HOUR9)]  # GRAIN_HOUR
    assert wait.entity_id == "RENIEC" and wait.source == "/platform/pcm-processor"
    assert (wait.kpi_value.value, wait.kpi_value.numerator, wait.kpi_value.denominator) == (
        840,
        2520,
        3,
    )
    assert wait.kpi_value.unit == "seconds"


def test_replaying_the_same_events_changes_no_kpi(
    isolated_settings: Settings, processor: ProcessorProcess, ch: Client
) -> None:
    before = read_kpis(ch, isolated_settings.clickhouse_database)
    tickets, procedures = known_events()
    send(isolated_settings, "attention", tickets[::-1])  # same events, reversed
    send(isolated_settings, "procedure_stage", procedures)
    caught_up(isolated_settings, processor)
    assert read_kpis(ch, isolated_settings.clickhouse_database) == before
    db = isolated_settings.clickhouse_database
    assert ch.execute(f"SELECT count() FROM {db}.attention_events FINAL") == [(6,)]


def test_an_observation_arriving_after_the_resolution_marks_it_reworked(
    isolated_settings: Settings, processor: ProcessorProcess, ch: Client
) -> None:
    filed, resolved = t(11, 0, day=11), t(12, 0, day=14)
    day14 = local_time(2025, 3, 14)
    send(
        isolated_settings,
        "procedure_stage",
        [
            procedure_event("RENIEC", "P3", "FILED", SERVICE, "PRESENCIAL", filed, filed),
            procedure_event("RENIEC", "P3", "RESOLVED", SERVICE, "PRESENCIAL", filed, resolved, 3),
        ],
    )
    caught_up(isolated_settings, processor)
    assert kpi(ch, isolated_settings, "PROCEDURES_REWORKED_PCT", "DAY", day14) == 0
    late = procedure_event(
        "RENIEC", "P3", "OBSERVED", SERVICE, "PRESENCIAL", filed, t(12, 0, day=12), 2
    )
    send(isolated_settings, "procedure_stage", [late])
    caught_up(isolated_settings, processor)
    assert kpi(ch, isolated_settings, "PROCEDURES_REWORKED_PCT", "DAY", day14) == 100


def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_processed(
    isolated_settings: Settings, processor: ProcessorProcess, ch: Client
) -> None:
    s = isolated_settings
    future = attention_event(
        "RENIEC", "T7", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 5), t(15, 9)
    )
    future.schema_version = 7
    wrong = procedure_event("RENIEC", "P9", "FILED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 0))
    unknown = attention_event(
        "RENIEC", "T8", "TICKET_SERVED", "NO_SUCH", "PRESENCIAL", t(15, 0), t(15, 5), t(15, 9)
    )
    good = attention_event(
        "RENIEC", "T9", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(15, 0), t(15, 2), t(15, 9)
    )
    topic = topic_for_domain("attention").name(s.topic_prefix)
    poison = [
        (b"RENIEC", b""),
        (b"RENIEC", b"\x08\x96\x01 not an envelope \xff"),
        (b"RENIEC", future.SerializeToString()),
        (b"RENIEC", wrong.SerializeToString()),
        (b"RENIEC", unknown.SerializeToString()),
    ]
    produce(s.kafka_bootstrap, topic, [*poison, (b"RENIEC", good.SerializeToString())])
    PRODUCED["attention"].append(good)
    caught_up(s, processor)
    assert kpi(ch, s, "WAIT_MEAN_S", "HOUR", local_time(2025, 3, 10, 15)) == 120

    dead_topic = topic_for_domain("dead_letter").name(s.topic_prefix)
    consumer = KafkaConsumer(
        dead_topic,
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
    metrics = urllib.request.urlopen(processor.metrics_url, timeout=5).read().decode()
    assert metric_value(metrics, "pcm_processor_dead_letter_total") == 5


def test_metrics_show_lag_per_partition_freshness_and_batches(
    isolated_settings: Settings, processor: ProcessorProcess
) -> None:
    topic = topic_for_domain("attention").name(isolated_settings.topic_prefix)
    time.sleep(2.5)  # one lag refresh after catching up
    page = urllib.request.urlopen(processor.metrics_url, timeout=5).read().decode()
    lags = [line for line in page.splitlines() if line.startswith("pcm_processor_consumer_lag{")]
    assert len([line for line in lags if f'topic="{topic}"' in line]) == 6  # one per partition
    assert metric_value(page, "pcm_processor_consumer_lag") == 0
    freshness = metric_value(page, "pcm_processor_freshness_seconds")
    assert freshness > 0  # now - newest event time written (March 2025 events here)
    assert metric_value(page, "pcm_processor_batch_size_count") >= 1
    assert metric_value(page, "pcm_processor_insert_seconds_count", {"table": "kpi_values"}) >= 1
    assert metric_value(page, "pcm_processor_kpi_rows_total") > 0


def test_clickhouse_outage_loses_nothing_and_counts_nothing_twice(
    isolated_settings: Settings,
    processor: ProcessorProcess,
    ch: Client,
    stack: LocalStack,
    catalogues: Catalogues,
) -> None:
    s = isolated_settings
    stream = SyntheticStream(catalogues, seed=5, entities=6, run_id="outage")
    events = [p.envelope for p in stream.attention_stream(6_000, local_time(2025, 5, 5, 8), 36_000)]
    topic = topic_for_domain("attention").name(s.topic_prefix)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)

    def committed() -> dict[TopicPartition, int]:
        offsets = admin.list_group_offsets({f"{s.topic_prefix}pcm-processor": None})
        return {tp: meta.offset for tp, meta in offsets[f"{s.topic_prefix}pcm-processor"].items()}

    def trickle() -> None:  # events keep flowing before, during and after the outage
        for start in range(0, len(events), 500):
            produce(s.kafka_bootstrap, topic, as_records(events[start : start + 500]))
            time.sleep(0.4)

    PRODUCED["attention"] += events
    producer = threading.Thread(target=trickle)
    producer.start()
    time.sleep(2)
    stack.stop("clickhouse")
    try:
        time.sleep(5)
        during = committed()
        time.sleep(20)
        assert committed() == during, "offsets were committed while ClickHouse was down"
        assert processor.alive()
    finally:
        stack.start("clickhouse")
    producer.join()
    admin.close()
    caught_up(s, processor, timeout_s=180)

    db = s.clickhouse_database
    distinct = ch.execute(f"SELECT uniqExact(event_id) FROM {db}.attention_events")[0][0]
    assert distinct == len({e.attention.event_id for e in PRODUCED["attention"]})
    problems = differences(expected_kpis(catalogues, PRODUCED), read_kpis(ch, db))
    assert not problems, "\n".join(problems[:20])
    metrics = urllib.request.urlopen(processor.metrics_url, timeout=5).read().decode()
    assert metric_value(metrics, "pcm_processor_insert_retries_total") > 0
    assert metric_value(metrics, "pcm_processor_events_total", {"topic": topic}) >= len(events)
    assert Path(processor.log_path).exists()
