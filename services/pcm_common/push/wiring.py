"""Building a ``PushKit`` from settings: the composition every push service shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import Counter

from pcm_common.auth import TokenStore
from pcm_common.grpc_server import Lifecycle, Registrar, ServerOptions, TlsFiles, serve
from pcm_common.kafka.producer import AcknowledgedProducer, EventProducer
from pcm_common.outbox import BookSink, Connections
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


def push_limits(settings: Settings, prefix: str) -> PushLimits:
    """A push service's limits from its settings ``<prefix>_max_batch``, ... (every push service
    names them alike)."""
    return PushLimits(
        max_batch=int(getattr(settings, f"{prefix}_max_batch")),
        rate_limit_events_per_s=int(getattr(settings, f"{prefix}_rate_limit_events_per_s")),
        retry_after_s=float(getattr(settings, f"{prefix}_retry_after_s")),
        future_skew_s=float(getattr(settings, f"{prefix}_future_skew_s")),
        max_age_days=int(getattr(settings, f"{prefix}_max_age_days")),
    )


def push_lifecycle(
    settings: Settings,
    prefix: str,
    service: ServiceDescriptor,
    register: Registrar,
    kit: PushKit,
) -> Lifecycle:
    """How a push service's process serves: address, size limit, threads, TLS and metrics port
    from its settings ``<prefix>_address``, ...; the kit is closed after draining."""

    def setting(name: str) -> Any:
        return getattr(settings, f"{prefix}_{name}")

    return Lifecycle(
        name=f"pcm-{prefix}",
        options=ServerOptions(
            address=str(setting("address")),
            max_message_bytes=int(setting("max_message_bytes")),
            workers=int(setting("workers")),
            tls=TlsFiles.optional(setting("tls_cert"), setting("tls_key")),
        ),
        registrars=[register],
        service_names=[service.full_name],
        undecodable=kit.metrics.undecodable,
        metrics_port=int(setting("metrics_port")),
        metrics_host=settings.metrics_host,
        on_stop=kit.close,
    )


def book_kit(
    settings: Settings,
    prefix: str,
    recorders: Mapping[str, Callable[[str, Any], None]],
    connections: Connections,
    metrics: PushMetrics,
    store_errors: Counter,
    what: str,
) -> PushKit:
    """A kit whose sink is the service's own PostgreSQL book (state and outbox in one
    transaction per call): complaints, indicators, surveys."""
    sink = BookSink(recorders, connections, store_errors, what)
    return PushKit(push_limits(settings, prefix), token_store(settings), sink, metrics)


def built(life: Lifecycle, kit: PushKit) -> tuple[grpc.Server, int, PushKit]:
    """A server ready to start (tests run it in-process), its port and its kit (to close)."""
    server, _, port = life.build()
    return server, port, kit


def serve_book_service(settings: Settings, life: Lifecycle) -> None:
    """Prepare the book's tables (advisory-locked: replicas may start together), then serve
    until SIGTERM."""
    # Imported here: the startup module imports every service's migration group.
    from pcm_common.postgres.migrate import POSTGRES_GROUPS
    from pcm_common.startup import migrate_postgres, retrying

    retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    serve(life)
