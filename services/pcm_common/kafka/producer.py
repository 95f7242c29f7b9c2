"""A Kafka producer that answers only after the broker acknowledged (acks=all, idempotent).

Built on confluent-kafka (librdkafka): the intake's hot path produces tens of thousands of
events per second, and a pure-Python client spends ~50 µs per message where librdkafka spends
~2 µs (measured in bench/intake_bench.py). Consumers and admin use kafka-python / faust.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pcm_common.logging import get_logger

log = get_logger(__name__)

Record = tuple[bytes, bytes]  # (key, value)
Headers = list[tuple[str, str | bytes | None]]


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time; nothing may be reported to the caller as stored."""


class EventProducer(Protocol):
    """What a push service needs from the event store: acknowledged sends.

    Two implementations keep the same contract (tests/integration/test_producer_contract.py):
    ``AcknowledgedProducer`` on real Kafka and ``InMemoryProducer`` (memory.py) for fast tests.
    """

    def send_and_wait(self, topic: str, records: Sequence[Record]) -> None:
        """Produce every record (in order per key); return only once all are acknowledged,
        else raise ``BrokerUnavailable``."""

    def close(self) -> None: ...


class _Acks:
    """Counts the delivery reports of one send_and_wait call."""

    def __init__(self, expected: int) -> None:
        self.pending = expected
        self.error: KafkaError | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if error is not None and self.error is None:
                self.error = error
            self.pending -= 1
            if self.pending == 0:
                self.done.set()


class AcknowledgedProducer:
    """Sends records and blocks until every one is acknowledged by all in-sync replicas.

    Idempotence makes librdkafka's own retries safe (a retried batch is not written twice).
    A broker that is down is not an error at construction: calls fail with BrokerUnavailable
    after `request_timeout_ms`, and succeed again once it is back.
    """

    def __init__(self, bootstrap: str, request_timeout_ms: int, client_id: str) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "batch.size": 1024 * 1024,
                "compression.type": "lz4",
                # A produce that cannot be acknowledged within this bound fails back to us.
                "message.timeout.ms": request_timeout_ms,
                "socket.connection.setup.timeout.ms": min(request_timeout_ms, 10_000),
            }
        )
        self._timeout_s = request_timeout_ms / 1000 + 5
        self._poller = threading.Thread(target=self._serve_callbacks, daemon=True)
        self._closed = threading.Event()
        self._poller.start()

    def _serve_callbacks(self) -> None:
        """Delivery reports are delivered by poll(); one thread serves them for all callers."""
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def send_and_wait(
        self, topic: str, records: Sequence[Record], headers: Sequence[Headers] = ()
    ) -> None:
        """Produce every record (with ``headers[i]`` if given); return only when all are
        acknowledged, else raise."""
        if not records:
            return
        acks = _Acks(len(records))
        try:
            for index, (key, value) in enumerate(records):
                self._produce(topic, key, value, acks, headers[index] if headers else None)
        except KafkaException as error:
            raise BrokerUnavailable(f"Kafka refused the batch: {error}") from error
        if not acks.done.wait(self._timeout_s):
            raise BrokerUnavailable(f"no acknowledgement from Kafka within {self._timeout_s:.0f} s")
        if acks.error is not None:
            log.warning("kafka produce failed", topic=topic, error=str(acks.error))
            raise BrokerUnavailable(f"Kafka did not acknowledge: {acks.error}")

    def _produce(
        self, topic: str, key: bytes, value: bytes, acks: _Acks, headers: Headers | None
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=acks
                )
                return
            except BufferError:
                # Local queue full (broker slow or down): wait for room instead of dropping.
                self._producer.poll(0.05)

    def close(self) -> None:
        self._closed.set()
        self._poller.join(timeout=2)
        self._producer.flush(5)
