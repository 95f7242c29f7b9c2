"""Kafka for tests: produce acknowledged records, read a topic back, name the processor's topics
and read its consumer group's committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.kafka.topics import topic_for_domain
from pcm_processor.domain.registry import DOMAINS

Record = tuple[bytes | None, bytes | None]


def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Produce (key, value) records and wait until the broker acknowledged them all: once this
    returns, a consumer can read every one of them."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    count = 0
    for key, value in records:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush(timeout=120)
    producer.close()
    return count


def as_records(envelopes: Iterable[envelope_pb2.EventEnvelope]) -> list[tuple[bytes, bytes]]:
    """Envelopes as the intake writes them: keyed by entity, so one entity stays ordered."""
    return [(e.entity_id.encode(), e.SerializeToString()) for e in envelopes]


def domain_topics(prefix: str, domains: Sequence[str] | None = None) -> list[str]:
    """Topics of ``domains`` under ``prefix``; by default every domain the processor consumes
    (its registry), so a new fact domain is waited for without touching the tests."""
    names = tuple(DOMAINS) if domains is None else domains
    return [topic_for_domain(name).name(prefix) for name in names]


def read_envelopes(
    bootstrap: str, topic: str, minimum: int, timeout_s: float = 15
) -> list[tuple[bytes, envelope_pb2.EventEnvelope]]:
    """Every (key, envelope) on the topic, waiting until at least ``minimum`` arrived and no
    more come."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[tuple[bytes, envelope_pb2.EventEnvelope]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fetched = consumer.poll(timeout_ms=300)
        for records in fetched.values():
            found += [(r.key, envelope_pb2.EventEnvelope.FromString(r.value)) for r in records]
        if len(found) >= minimum and not fetched:
            break
    consumer.close()
    return found


def committed_offsets(bootstrap: str, group_id: str) -> dict[TopicPartition, int]:
    """The consumer group's committed offset per partition, as the broker has them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}
