"""One contract, two backends each (as getsentry/arroyo tests its brokers): what the push kit
relies on holds for the fast in-memory fakes of the unit tests and for the real servers.

- event producer: ``InMemoryProducer`` and ``AcknowledgedProducer`` on the local Kafka;
- event-id ledger: ``MemoryLedger`` and ``PostgresLedger`` on the local PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.memory import InMemoryProducer
from pcm_common.kafka.producer import (
    AcknowledgedProducer,
    BrokerUnavailable,
    EventProducer,
    Record,
)
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.push import Claim, EventLedger, LedgerUnavailable, MemoryLedger
from pcm_common.push.postgres_ledger import PostgresLedger, ledger_key, ledger_pool
from pcm_common.settings import Settings

# --- producers ---------------------------------------------------------------------------------


@dataclass
class ProducerBackend:
    producer: EventProducer
    read: Callable[[str, int], list[Record]]
    unreachable: Callable[[], EventProducer]


def kafka_records(bootstrap: str) -> Callable[[str, int], list[Record]]:
    def read(topic: str, minimum: int) -> list[Record]:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[Record] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(found) < minimum:
            for batch in consumer.poll(timeout_ms=300).values():
                found += [(r.key, r.value) for r in batch]
        consumer.close()
        return found

    return read


@pytest.fixture(params=["memory", "kafka"])
def producers(
    request: pytest.FixtureRequest, isolated_settings: Settings
) -> Iterator[ProducerBackend]:
    if request.param == "memory":
        memory = InMemoryProducer()

        def switched_off() -> EventProducer:
            off = InMemoryProducer()
            off.available = False
            return off

        yield ProducerBackend(memory, lambda topic, _: memory.records(topic), switched_off)
        return
    ensure_topics(isolated_settings.kafka_bootstrap, isolated_settings.topic_prefix)
    real = AcknowledgedProducer(isolated_settings.kafka_bootstrap, 5_000, "contract-test")
    yield ProducerBackend(
        real,
        kafka_records(isolated_settings.kafka_bootstrap),
        # Nothing listens on port 1: the broker never acknowledges.
        lambda: AcknowledgedProducer("127.0.0.1:1", 2_000, "contract-test-unreachable"),
    )
    real.close()


def test_producer_returns_once_every_record_is_readable_in_order(
    producers: ProducerBackend, isolated_settings: Settings
) -> None:
    topic = topic_for_domain("attention").name(isolated_settings.topic_prefix)
    run = uuid.uuid4().hex.encode()
    records = [(b"RENIEC", run + b"-%d" % n) for n in range(50)]
    producers.producer.send_and_wait(topic, records[:25])
    producers.producer.send_and_wait(topic, records[25:])
    producers.producer.send_and_wait(topic, [])  # nothing to send is not an error
    mine = [r for r in producers.read(topic, 50) if r[1].startswith(run)]
    assert mine == records  # one key: one partition, send order kept


def test_producer_that_gets_no_ack_raises_broker_unavailable(producers: ProducerBackend) -> None:
    unreachable = producers.unreachable()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        unreachable.send_and_wait("pcm.contract.v1", [(b"RENIEC", b"x")])
    assert time.monotonic() - started < 30
    unreachable.close()


# --- ledgers -----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "postgres"])
def ledger(request: pytest.FixtureRequest, isolated_settings: Settings) -> Iterator[EventLedger]:
    if request.param == "memory":
        yield MemoryLedger(capacity=1_000)
        return
    connections = ledger_pool(isolated_settings, 4)
    connections.open(wait=True)
    durable = PostgresLedger(connections, lease_s=1.0, confirm_interval_s=0.02)
    yield durable
    durable.close()


def ids(count: int) -> list[str]:
    run = uuid.uuid4().hex
    return [f"{run}-{n}" for n in range(count)]


def eventually(condition: Callable[[], bool], timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_ledger_claim_confirm_release(ledger: EventLedger) -> None:
    a, b, c = ids(3)
    assert ledger.claim("attention", "RENIEC", [a, b, c]) == [Claim.NEW] * 3
    assert ledger.claim("attention", "RENIEC", [a]) == [Claim.IN_PROGRESS]
    ledger.confirm("attention", "RENIEC", [a, b])
    ledger.release("attention", "RENIEC", [c])
    # Confirmations may be written in the background: a duplicate soon, never a NEW.
    assert eventually(lambda: ledger.claim("attention", "RENIEC", [a, b]) == [Claim.DUPLICATE] * 2)
    assert ledger.claim("attention", "RENIEC", [c]) == [Claim.NEW]
    # Ids are per entity and per domain.
    assert ledger.claim("attention", "SUNARP", [a]) == [Claim.NEW]
    assert ledger.claim("procedure_stage", "RENIEC", [a]) == [Claim.NEW]
    assert ledger.claim("attention", "RENIEC", []) == []


def test_ledger_gives_an_id_to_exactly_one_of_many_concurrent_claims(
    ledger: EventLedger,
) -> None:
    shared = ids(200)
    answers: list[list[Claim]] = []
    lock = threading.Lock()

    def claim() -> None:
        got = ledger.claim("attention", "RENIEC", shared)
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 4
    for position in range(len(shared)):
        assert [answer[position] for answer in answers].count(Claim.NEW) == 1


def test_postgres_ledger_reclaims_only_after_the_lease(isolated_settings: Settings) -> None:
    """A replica killed between claim and confirm leaves a claim: a resend is 'in progress'
    during the lease, then accepted again (the processors keep the first copy)."""
    connections = ledger_pool(isolated_settings, 2)
    connections.open(wait=True)
    durable = PostgresLedger(connections, lease_s=0.5)
    try:
        (orphan,) = ids(1)
        assert durable.claim("attention", "RENIEC", [orphan]) == [Claim.NEW]
        assert durable.claim("attention", "RENIEC", [orphan]) == [Claim.IN_PROGRESS]
        assert eventually(lambda: durable.claim("attention", "RENIEC", [orphan]) == [Claim.NEW])
    finally:
        durable.close()


def test_postgres_ledger_down_is_ledger_unavailable(isolated_settings: Settings) -> None:
    unreachable = isolated_settings.model_copy(update={"postgres_port": 1})
    connections = ledger_pool(unreachable, 1, timeout_s=1)
    connections.open(wait=False)
    durable = PostgresLedger(connections, lease_s=1.0)
    try:
        with pytest.raises(LedgerUnavailable):
            durable.claim("attention", "RENIEC", ids(1))
    finally:
        durable.close()


def test_postgres_ledger_purges_ids_older_than_its_retention(isolated_settings: Settings) -> None:
    connections = ledger_pool(isolated_settings, 2)
    connections.open(wait=True)
    durable = PostgresLedger(connections, lease_s=60)
    try:
        old, recent = ids(2)
        durable.claim("attention", "RENIEC", [old, recent])
        with connections.connection() as connection:
            connection.execute(
                "UPDATE event_ledger SET claimed_at = now() - interval '402 days' WHERE key = %s",
                (uuid.UUID(bytes=ledger_key("attention", "RENIEC", old)),),
            )
        assert durable.purge(timedelta(days=401)) == 1
        assert durable.claim("attention", "RENIEC", [old, recent]) == [
            Claim.NEW,
            Claim.IN_PROGRESS,
        ]
    finally:
        durable.close()
