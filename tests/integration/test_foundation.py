"""The foundation on the real servers: topics, an acknowledged protobuf round trip, migrations."""

from __future__ import annotations

import time

from clickhouse_driver import Client
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import describe_partitions, ensure_topics
from pcm_common.kafka.envelope import decode, wrap
from pcm_common.kafka.producer import AcknowledgedProducer
from pcm_common.kafka.topics import TOPICS, topic_for_domain
from pcm_common.settings import Settings
from pcm_testkit.kafka import read_envelopes

from tests.fact_tables import (
    assert_fact_tables_match_their_declaration,
    assert_migrations_apply_once,
    assert_regranulation_keeps_every_row,
)


def test_topics_are_created_with_their_partition_counts(isolated_settings: Settings) -> None:
    prefix = isolated_settings.topic_prefix
    created = ensure_topics(isolated_settings.kafka_bootstrap, prefix)
    assert sorted(created) == sorted(topic.name(prefix) for topic in TOPICS)
    assert ensure_topics(isolated_settings.kafka_bootstrap, prefix) == []
    for topic in TOPICS:
        assert describe_partitions(isolated_settings.kafka_bootstrap, topic.name(prefix)) == (
            topic.partitions
        )


def test_protobuf_event_round_trips_through_the_broker(isolated_settings: Settings) -> None:
    ensure_topics(isolated_settings.kafka_bootstrap, isolated_settings.topic_prefix)
    topic = topic_for_domain("attention").name(isolated_settings.topic_prefix)
    attention = attention_pb2.AttentionEvent(
        event_id="evt-roundtrip-1",
        entity_id="RENIEC",
        ticket_id="A-042",
        kind=attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED,
        channel="PRESENCIAL",
        service_id="RENIEC-DNI-DUPLICADO",
        issued_at=Timestamp(seconds=1_764_000_000),
        called_at=Timestamp(seconds=1_764_000_600),
        finished_at=Timestamp(seconds=1_764_000_900),
    )
    envelope = wrap(attention, "RENIEC", Timestamp(seconds=int(time.time())))
    producer = AcknowledgedProducer(isolated_settings.kafka_bootstrap, 10_000, "test")
    producer.send_and_wait(topic, [(b"RENIEC", envelope.SerializeToString())])
    producer.close()

    received = read_envelopes(isolated_settings.kafka_bootstrap, topic, minimum=1)
    assert [key for key, _ in received] == [b"RENIEC"]
    decoded = decode(envelope.SerializeToString(), "attention")
    assert received[0][1] == decoded
    assert decoded.attention == attention
    assert decoded.time.seconds == 1_764_000_900  # occurrence time = end of service
    assert decoded.source == "/entities/RENIEC"


def test_migrations_apply_twice_on_the_real_server(
    clickhouse: Client, isolated_settings: Settings
) -> None:
    assert_migrations_apply_once(clickhouse, isolated_settings.clickhouse_database)


def test_regranulation_keeps_every_row_on_the_real_server(
    clickhouse: Client, isolated_settings: Settings
) -> None:
    """As in tests/unit/test_migrations_chdb.py, on the Debian 18.16 server."""
    migrate(clickhouse, isolated_settings.clickhouse_database)
    assert_regranulation_keeps_every_row(clickhouse, isolated_settings.clickhouse_database)


def test_fact_tables_match_their_declaration_on_the_real_server(
    clickhouse: Client, isolated_settings: Settings
) -> None:
    """As in tests/unit/test_migrations_chdb.py, on the Debian 18.16 server."""
    assert_fact_tables_match_their_declaration(clickhouse, isolated_settings.clickhouse_database)
