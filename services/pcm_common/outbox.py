"""The transactional outbox every stateful push service shares: the rows its transactions
commit beside their state are published to Kafka by a leader worker.

A service's store writes ``(entity_id, event_id, envelope)`` rows to its outbox table in the
same transaction as its state, and NOTIFYs the table's channel. ``OutboxWorker`` runs in every
replica of the service's worker process; one is the leader (a session advisory lock, released by
PostgreSQL when the leader's connection dies) and the others wait. The leader:

- publishes unpublished rows in ``id`` order, a batch at a time: produce with the broker's ack,
  then stamp ``published_at`` in the transaction that locked the rows. A crash between the ack
  and the stamp publishes the batch again with the same event ids, which consumers keep once
  (the processor stores the first copy of an id): nothing lost, nothing counted twice;
- wakes on NOTIFY (low latency), else every ``idle_s``;
- runs the service's periodic jobs (``PeriodicJob``: e.g. the complaints' overdue pass), then
  publishes what they committed.

The table must have the columns of ``OUTBOX_COLUMNS`` (see pcm_complaints/migrations/0001).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from pcm_common.kafka.producer import BrokerUnavailable, EventProducer
from pcm_common.logging import get_logger
from pcm_common.postgres.leader import LeaderLock
from pcm_common.settings import Settings

log = get_logger(__name__)

Connections = ConnectionPool[psycopg.Connection[TupleRow]]
OUTBOX_COLUMNS = ("id", "entity_id", "event_id", "envelope", "created_at", "published_at")
PURGE_EVERY_S = 3_600


@dataclass(frozen=True)
class OutboxMetrics:
    """A worker's series, ``<prefix>_*`` (one set per service: the same alert rules fit all)."""

    pending: Gauge
    oldest: Gauge
    published: Counter
    errors: Counter
    leader: Gauge

    @classmethod
    def declare(cls, prefix: str) -> OutboxMetrics:
        return cls(
            pending=Gauge(
                f"{prefix}_outbox_pending", "Outbox rows committed but not yet published to Kafka."
            ),
            oldest=Gauge(
                f"{prefix}_outbox_oldest_seconds",
                "Age of the oldest unpublished outbox row (0 when none).",
            ),
            published=Counter(
                f"{prefix}_outbox_published_total", "Outbox rows published to Kafka (acknowledged)."
            ),
            errors=Counter(
                f"{prefix}_relay_errors_total",
                "Relay batches Kafka or PostgreSQL refused (retried).",
            ),
            leader=Gauge(
                f"{prefix}_leader", "1 on the worker replica holding the worker lock, else 0."
            ),
        )


@dataclass(frozen=True)
class Outbox:
    """Where a service's events wait: its table, the NOTIFY channel its commits raise, and the
    topic they go to."""

    table: str
    channel: str
    topic: str


class Relay:
    """Outbox rows to Kafka, in order, acknowledged before they are marked published."""

    def __init__(
        self,
        connections: Connections,
        producer: EventProducer,
        outbox: Outbox,
        batch: int,
        metrics: OutboxMetrics,
    ) -> None:
        self._connections = connections
        self._producer = producer
        self._outbox = outbox
        self._batch = batch
        self._metrics = metrics

    def publish_batch(self) -> int:
        """Publish up to one batch; how many rows were published."""
        table = self._outbox.table
        with self._connections.connection() as conn, conn.transaction():
            rows = conn.execute(
                f"SELECT id, entity_id, envelope FROM {table} WHERE published_at IS NULL "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self._batch,),
            ).fetchall()
            if not rows:
                return 0
            records = [(entity.encode(), bytes(envelope)) for _, entity, envelope in rows]
            self._producer.send_and_wait(self._outbox.topic, records)
            conn.execute(
                f"UPDATE {table} SET published_at = now() WHERE id = ANY(%s)",
                ([row_id for row_id, _, _ in rows],),
            )
        self._metrics.published.inc(len(rows))
        return len(rows)

    def drain(self) -> int:
        published = 0
        while True:
            count = self.publish_batch()
            published += count
            if count < self._batch:
                return published

    def refresh_gauges(self) -> None:
        with self._connections.connection() as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                f"FROM {self._outbox.table} WHERE published_at IS NULL"
            ).fetchone()
        assert row is not None
        self._metrics.pending.set(int(row[0]))
        self._metrics.oldest.set(float(row[1]))

    def purge(self, retention_days: int) -> None:
        with self._connections.connection() as conn:
            conn.execute(
                f"DELETE FROM {self._outbox.table} "
                "WHERE published_at < now() - make_interval(days => %s)",
                (retention_days,),
            )


@dataclass
class PeriodicJob:
    """Work only the leader does, every ``interval_s`` (first run at once)."""

    name: str
    interval_s: float
    run: Callable[[], object]
    on_leadership_lost: Callable[[], object] = lambda: None
    """Forget what only a leader reports (gauges of a former leader would go stale)."""
    last_run: float = field(default=float("-inf"))


class OutboxWorker:
    """The leader loop (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        relay: Relay,
        outbox: Outbox,
        metrics: OutboxMetrics,
        jobs: Sequence[PeriodicJob] = (),
        idle_s: float = 1.0,
        retention_days: int = 7,
        on_stop: Callable[[], Any] = lambda: None,
    ) -> None:
        self._settings = settings
        self._name = name
        self._lock = LeaderLock(settings, name)
        self._relay = relay
        self._outbox = outbox
        self._metrics = metrics
        self._jobs = [
            *jobs,
            PeriodicJob("purge", PURGE_EVERY_S, lambda: relay.purge(retention_days)),
        ]
        self._idle_s = idle_s
        self._on_stop = on_stop
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._lead():
                    self._metrics.leader.set(0)
                    self.stopping.wait(self._idle_s)
                    continue
                self._metrics.leader.set(1)
                self._work()
                self._wait_for_commits()
            except BrokerUnavailable as error:
                self._metrics.errors.inc()
                log.warning(
                    "relay: broker unavailable, retrying", worker=self._name, error=str(error)
                )
                self.stopping.wait(self._idle_s)
            except psycopg.Error as error:
                self._metrics.errors.inc()
                log.warning(
                    "worker: PostgreSQL unavailable, retrying", worker=self._name, error=str(error)
                )
                self._drop_leadership()
                self.stopping.wait(self._idle_s)
        self._drop_leadership()
        self._on_stop()

    def _lead(self) -> bool:
        """Hold the leader lock on a connection of our own (released if it dies)."""
        if self._lock.connection is not None and not self._lock.connection.closed:
            return True
        if not self._lock.held():
            return False
        assert self._lock.connection is not None
        self._lock.connection.execute(f"LISTEN {self._outbox.channel}")
        log.info("worker leads", worker=self._name)
        return True

    def _drop_leadership(self) -> None:
        self._lock.release()
        # Only the leader reports: a former leader's figures would go stale (and keep alerts
        # firing that the new leader already cleared).
        self._metrics.leader.set(0)
        self._metrics.pending.set(0)
        self._metrics.oldest.set(0)
        for job in self._jobs:
            job.on_leadership_lost()

    def work_once(self) -> None:
        """One leader pass with every job run now, without the leader lock (tests, drills: the
        caller knows no other worker runs)."""
        for job in self._jobs:
            job.last_run = float("-inf")
        self._work()

    def _work(self) -> None:
        self._relay.drain()
        now = time.monotonic()
        for job in self._jobs:
            if now - job.last_run >= job.interval_s:
                job.run()
                job.last_run = now
                self._relay.drain()  # what the job just committed
        self._relay.refresh_gauges()

    def _wait_for_commits(self) -> None:
        assert self._lock.connection is not None
        # Also proves the leader connection alive: a dead one raises and leadership is dropped.
        for _ in self._lock.connection.notifies(timeout=self._idle_s, stop_after=1):
            pass


class OutboxWorkers:
    """Several outboxes of one service (one per published domain) relayed by one process: a
    leader loop each, stopped together."""

    def __init__(self, workers: Sequence[OutboxWorker]) -> None:
        self.workers = list(workers)
        self.stopping = threading.Event()
        for worker in self.workers:
            worker.stopping = self.stopping

    def run(self) -> None:
        others = [threading.Thread(target=w.run, daemon=True) for w in self.workers[1:]]
        for thread in others:
            thread.start()
        self.workers[0].run()
        for thread in others:
            thread.join(30)

    def work_once(self) -> None:
        for worker in self.workers:
            worker.work_once()


def outbox_worker(
    settings: Settings,
    name: str,
    connections: Connections,
    outbox: Outbox,
    metrics: OutboxMetrics,
    batch: int,
    jobs: Sequence[PeriodicJob] = (),
    idle_s: float = 1.0,
    retention_days: int = 7,
    producer: EventProducer | None = None,
) -> OutboxWorker:
    """A service's worker: its relay on its own connections and an acknowledged producer."""
    # Imported here: building a worker in tests with an in-memory producer needs no Kafka client.
    from pcm_common.kafka.producer import AcknowledgedProducer

    kafka = producer or AcknowledgedProducer(
        settings.kafka_bootstrap, settings.kafka_request_timeout_ms, name
    )

    def close() -> None:
        kafka.close()
        connections.close()

    relay = Relay(connections, kafka, outbox, batch, metrics)
    return OutboxWorker(
        settings, name, relay, outbox, metrics, jobs, idle_s, retention_days, on_stop=close
    )


def run_worker(
    settings: Settings, build: Callable[[], OutboxWorker | OutboxWorkers], metrics_port: int
) -> None:
    """Prepare topics and tables, serve /metrics, then work until SIGTERM."""
    # Imported here: pcm_common.startup imports the migration groups of every service.
    import signal

    from pcm_common.metrics import serve_metrics
    from pcm_common.postgres.migrate import POSTGRES_GROUPS
    from pcm_common.startup import ensure_topics, migrate_postgres, retrying

    try:
        ensure_topics(settings)
    except Exception as error:  # the relay retries until the broker is there
        log.warning("could not ensure topics at start", error=str(error))
    retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    if metrics_port:
        serve_metrics(metrics_port, settings.metrics_host)
    running = build()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: running.stopping.set())
    running.run()


class BookSink:
    """The push kit's last step for a service whose store is a PostgreSQL book (its state and
    its outbox): one transaction per call, by the recorder of the call's domain
    (``recorders[domain](entity_id, outcome)``). An unreachable
    database, or a transaction it cannot serialize, refuses the whole call (UNAVAILABLE,
    ``ERROR_REASON_STORE_UNAVAILABLE``): nothing was stored."""

    def __init__(
        self,
        recorders: Mapping[str, Callable[[str, Any], None]],
        connections: Connections,
        errors: Counter,
        what: str,
    ) -> None:
        self._recorders = recorders
        self._connections = connections
        self._errors = errors
        self._what = what

    def store(self, domain: str, entity_id: str, outcome: Any) -> None:
        # Imported here: the kit imports nothing of the stores its sinks use.
        from pcm_common.push.kit import StoreUnavailable

        if not outcome.accepted:
            return
        try:
            self._recorders[domain](entity_id, outcome)
        except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as error:
            self._errors.inc()
            log.warning(
                f"batch refused: {self._what} unavailable", entity=entity_id, error=str(error)
            )
            raise StoreUnavailable(
                "ERROR_REASON_STORE_UNAVAILABLE", f"{self._what} (PostgreSQL) unavailable"
            ) from error

    def close(self) -> None:
        self._connections.close()
