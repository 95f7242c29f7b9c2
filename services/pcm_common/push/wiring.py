"""Building a ``PushKit`` from settings: the composition every push service shares."""

from __future__ import annotations

from datetime import timedelta

from pcm_common.auth import TokenStore
from pcm_common.kafka.producer import AcknowledgedProducer, EventProducer
from pcm_common.push.kit import BrokerSink, PushKit, PushLimits
from pcm_common.push.ledger import EventLedger, LayeredLedger, MemoryLedger
from pcm_common.push.metrics import PushMetrics
from pcm_common.settings import Settings


def build_ledger(
    settings: Settings, window: int, workers: int, retention: timedelta
) -> EventLedger:
    """The replica's recent window, in front of PostgreSQL unless settings say memory only.

    ``retention``: how long ids are kept; older ones are purged (a resend that old is refused by
    the time window anyway)."""
    recent = MemoryLedger(window)
    if settings.push_ledger == "memory":
        return recent
    # Imported here: a memory-only deployment needs no PostgreSQL driver loaded.
    from pcm_common.push.postgres_ledger import PostgresLedger, ledger_pool

    connections = ledger_pool(settings, workers + 1)
    connections.open(wait=False)
    durable = PostgresLedger(connections, settings.push_claim_lease_s, retention)
    return LayeredLedger(recent, durable)


def build_kit(
    settings: Settings,
    limits: PushLimits,
    metrics: PushMetrics,
    client_id: str,
    dedupe_window: int,
    workers: int,
    producer: EventProducer | None = None,
) -> PushKit:
    """A kit whose sink is Kafka behind the event-id ledger (the intake's)."""
    sink = BrokerSink(
        producer
        or AcknowledgedProducer(
            settings.kafka_bootstrap, settings.kafka_request_timeout_ms, client_id
        ),
        # Kept a day longer than the oldest event accepted: clocks and time zones differ.
        build_ledger(settings, dedupe_window, workers, timedelta(days=limits.max_age_days + 1)),
        metrics,
        settings.topic_prefix,
    )
    return PushKit(limits, token_store(settings), sink, metrics)


def token_store(settings: Settings) -> TokenStore:
    return TokenStore(settings.token_file, settings.token_reload_interval_s)
