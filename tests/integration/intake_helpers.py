"""Shared builders for intake tests: realistic events and a consumer that reads a topic back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import attention_pb2, envelope_pb2

SERVED = attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED


def stamp(seconds_ago: float) -> Timestamp:
    return Timestamp(seconds=int(time.time() - seconds_ago))


def served_attention(entity_id: str = "RENIEC", **overrides: Any) -> attention_pb2.AttentionEvent:
    """A served ticket: issued 20 min ago, called 8 min later, served in 6 min."""
    fields: dict[str, Any] = {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "entity_id": entity_id,
        "ticket_id": f"T-{uuid.uuid4().hex[:8]}",
        "kind": SERVED,
        "channel": "PRESENCIAL",
        "service_id": "RENIEC_DNI_DUPLICADO" if entity_id == "RENIEC" else "ORIENTACION",
        "office_id": "LIMA-CENTRO",
        "issued_at": stamp(1200),
        "called_at": stamp(720),
        "finished_at": stamp(360),
    }
    fields.update(overrides)
    return attention_pb2.AttentionEvent(**fields)


def read_envelopes(
    bootstrap: str, topic: str, minimum: int, timeout_s: float = 15
) -> list[tuple[bytes, envelope_pb2.EventEnvelope]]:
    """Every (key, envelope) on the topic, waiting until at least `minimum` arrived."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[tuple[bytes, envelope_pb2.EventEnvelope]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=300).values():
            found += [(r.key, envelope_pb2.EventEnvelope.FromString(r.value)) for r in records]
        if len(found) >= minimum and not consumer.poll(timeout_ms=300):
            break
    consumer.close()
    return found
