"""Kafka outputs of the processor: dead letters and KPI values, sent and acknowledged.

The pipeline only releases a batch's offsets after these sends are acknowledged, so a crash
repeats them instead of losing them (at-least-once: a KPI consumer keeps the highest version per
key; a dead-letter reader may see a message twice after a crash).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pcm.monitoring.v1 import common_pb2, envelope_pb2
from pcm_common.domains import KPI_VALUE
from pcm_common.kafka.envelope import SCHEMA_VERSION, envelope_type
from pcm_common.kafka.producer import AcknowledgedProducer, Headers

from pcm_processor.adapters.retry import retry_forever
from pcm_processor.domain.kpis import KpiRow
from pcm_processor.domain.poison import DeadLetter

SOURCE = "/platform/pcm-processor"
PROTO_GRAINS = {
    "HOUR": common_pb2.GRAIN_HOUR,
    "DAY": common_pb2.GRAIN_DAY,
    "MONTH": common_pb2.GRAIN_MONTH,
}


@dataclass(frozen=True)
class OutRecord:
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


class RecordSender(Protocol):
    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        """Produce every record; return once the broker acknowledged all of them."""


class ProducerSender:
    """``RecordSender`` over an acknowledged librdkafka producer, in a worker thread.

    Not faust's own producer (aiokafka): a national flush publishes tens of thousands of KPI
    values. Sending 30,000 of them took aiokafka 1.05 s of CPU, all on the event loop's thread
    (a loaded national flush waited 3.2 s on it); librdkafka took 0.23 s, mostly off the loop.
    """

    def __init__(self, producer: AcknowledgedProducer) -> None:
        self._producer = producer

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        pairs = [(r.key or b"", r.value or b"") for r in records]
        headers = [r.headers for r in records] if any(r.headers for r in records) else []
        await asyncio.to_thread(self._producer.send_and_wait, topic, pairs, headers)


def dead_letter_record(item: DeadLetter) -> OutRecord:
    """Original key and bytes; why and where from in headers (a reader can replay it)."""
    return OutRecord(
        item.key,
        item.value,
        [
            ("reason", item.reason.encode()),
            ("detail", item.detail.encode()[:2000]),
            ("source_topic", item.topic.encode()),
            ("source_partition", str(item.partition).encode()),
            ("source_offset", str(item.offset).encode()),
        ],
    )


_KPI_TYPE = envelope_type(KPI_VALUE)


def kpi_envelope(row: KpiRow, version: int, computed_at: int, catalogue_version: str = "") -> bytes:
    """The envelope ``wrap`` would make of this value (a test holds them equal), built in place:
    a processor publishes thousands a second, and copying the payload in cost most of it."""
    at = {"seconds": computed_at}
    # Nested messages as dicts: protobuf builds them in place (message arguments are copied).
    fields: dict[str, Any] = {
        # KpiValue has no event_id: the key plus version identifies this value (CloudEvents id).
        "id": f"{row.entity_id}/{row.kpi_code}/{row.grain}/{row.period_start}/{row.channel}/"
        f"{row.service_id}/{version}",
        "source": SOURCE,
        "type": _KPI_TYPE,
        "subject": row.kpi_code,
        "schema_version": SCHEMA_VERSION,
        "entity_id": row.entity_id,
        "time": at,
        "received_at": at,
        "kpi_value": {
            "entity_id": row.entity_id,
            "kpi_code": row.kpi_code,
            "grain": PROTO_GRAINS[row.grain],
            "period_start": {"seconds": row.period_start},
            "channel": row.channel,
            "service_id": row.service_id,
            "value": row.value,
            "numerator": row.numerator,
            "denominator": row.denominator,
            "unit": row.unit,
            "computed_at": at,
            "version": version,
            "insufficient_sample": row.insufficient_sample,
            "catalogue_version": catalogue_version,
        },
    }
    envelope = envelope_pb2.EventEnvelope(**fields)
    return envelope.SerializeToString()


class Outbox:
    def __init__(
        self,
        sender: RecordSender,
        dead_letter_topic: str,
        kpi_topic: str,
        max_backoff_s: float,
        catalogue_version: str = "",
    ) -> None:
        self._sender = sender
        self.catalogue_version = catalogue_version
        self.dead_letter_topic = dead_letter_topic
        self.kpi_topic = kpi_topic
        self._max_backoff_s = max_backoff_s

    async def _send(self, what: str, topic: str, records: Sequence[OutRecord]) -> None:
        if records:
            await retry_forever(
                what, lambda: self._sender.send_all(topic, records), self._max_backoff_s
            )

    async def dead_letter(self, items: Sequence[DeadLetter]) -> None:
        await self._send(
            "dead letters", self.dead_letter_topic, [dead_letter_record(i) for i in items]
        )

    async def publish_kpis(
        self, rows: Sequence[KpiRow], versions: Sequence[int], computed_at: int
    ) -> None:
        records = [
            OutRecord(
                row.entity_id.encode(),
                kpi_envelope(row, version, computed_at, self.catalogue_version),
            )
            for row, version in zip(rows, versions, strict=True)
        ]
        await self._send("publish kpis", self.kpi_topic, records)
