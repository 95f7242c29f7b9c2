"""A Kafka producer that answers only after the broker acknowledged (acks=all, idempotent)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pcm_common.logging import get_logger

log = get_logger(__name__)

Record = tuple[bytes, bytes]  # (key, value)


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time; nothing may be reported to the caller as stored."""


class AcknowledgedProducer:
    """Sends records and blocks until every one is acknowledged by all in-sync replicas.

    The underlying client is created lazily and re-created after a failure, so a service can
    start (and answer UNAVAILABLE) while the broker is down, and recover when it returns.
    Idempotence makes the client's own retries safe: a retried batch is not written twice.
    """

    def __init__(self, bootstrap: str, request_timeout_ms: int, client_id: str) -> None:
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 2,
            "batch_size": 256 * 1024,
            "max_in_flight_requests_per_connection": 5,
            "request_timeout_ms": request_timeout_ms,
            "delivery_timeout_ms": request_timeout_ms + 2_000,
            "max_block_ms": request_timeout_ms,
        }
        self._ack_timeout_s = (request_timeout_ms + 5_000) / 1000
        self._client: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _producer(self) -> KafkaProducer:
        with self._lock:
            if self._client is None:
                try:
                    self._client = KafkaProducer(**self._config)
                except KafkaError as error:
                    raise BrokerUnavailable(f"cannot connect to Kafka: {error}") from error
            return self._client

    def send_and_wait(self, topic: str, records: Sequence[Record]) -> None:
        """Produce every record; return only when all are acknowledged, else raise."""
        if not records:
            return
        producer = self._producer()
        try:
            futures = [producer.send(topic, key=key, value=value) for key, value in records]
            producer.flush(timeout=self._ack_timeout_s)
            for future in futures:
                future.get(timeout=self._ack_timeout_s)
        except (KafkaError, TimeoutError) as error:
            log.warning("kafka produce failed", topic=topic, error=str(error))
            self._reset()
            raise BrokerUnavailable(f"Kafka did not acknowledge: {error}") from error

    def _reset(self) -> None:
        """Drop a client whose buffers may hold failed batches; the next call starts afresh."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close(timeout=0)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close(timeout=5)
