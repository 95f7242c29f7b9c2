"""Wrapping domain payloads into EventEnvelopes and decoding them back, with poison detection."""

from __future__ import annotations

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import envelope_pb2

from pcm_common.domains import EventDomain, domain_of

# Highest payload schema version each consumer of this build understands.
SCHEMA_VERSION = 1
CLOUDEVENT_TYPE_PREFIX = "pe.gob.pcm.monitoring"


class PoisonMessage(Exception):
    """A Kafka message no consumer of this build can use; goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def occurrence_time(payload: Message, domain: EventDomain) -> Timestamp:
    for name in domain.time_fields:
        if payload.HasField(name):
            stamp: Timestamp = getattr(payload, name)
            return stamp
    return Timestamp()


def envelope_type(domain: EventDomain) -> str:
    """The CloudEvents ``type`` of a domain's envelopes."""
    return f"{CLOUDEVENT_TYPE_PREFIX}.{domain.name}.v{SCHEMA_VERSION}"


def wrap(
    payload: Message, entity_id: str, received_at: Timestamp, source: str | None = None
) -> envelope_pb2.EventEnvelope:
    """Put a payload in its envelope with CloudEvents attributes derived from the payload."""
    domain = domain_of(payload)
    envelope = envelope_pb2.EventEnvelope(
        id=getattr(payload, "event_id", ""),
        source=source or f"/entities/{entity_id}",
        type=envelope_type(domain),
        subject=getattr(payload, domain.subject_field),
        schema_version=SCHEMA_VERSION,
        entity_id=entity_id,
    )
    envelope.time.CopyFrom(occurrence_time(payload, domain))
    envelope.received_at.CopyFrom(received_at)
    getattr(envelope, domain.payload_field).CopyFrom(payload)
    return envelope


def decode(value: bytes | None, expected_payload: str) -> envelope_pb2.EventEnvelope:
    """Parse a Kafka value; raise PoisonMessage with a reason a dead-letter reader understands."""
    if not value:
        raise PoisonMessage("empty", "message has no value")
    try:
        envelope = envelope_pb2.EventEnvelope.FromString(value)
    except DecodeError as error:
        raise PoisonMessage("undecodable", str(error)) from None
    if envelope.schema_version == 0 or envelope.schema_version > SCHEMA_VERSION:
        raise PoisonMessage(
            "unknown_schema_version",
            f"schema_version {envelope.schema_version}; this build reads 1..{SCHEMA_VERSION}",
        )
    actual = envelope.WhichOneof("payload")
    if actual != expected_payload:
        raise PoisonMessage("wrong_payload", f"expected {expected_payload}, got {actual}")
    if not envelope.entity_id:
        raise PoisonMessage("missing_entity", "envelope has no entity_id")
    return envelope
