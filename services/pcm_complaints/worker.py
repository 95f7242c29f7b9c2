"""The complaints worker: relays the outbox to Kafka and runs the overdue job.

Every replica runs it; one is the leader (a session advisory lock in PostgreSQL, released by
the server when the leader's connection dies) and the others wait. The leader:

- publishes unpublished outbox rows in commit order, a batch at a time: produce with the
  broker's ack, then stamp ``published_at`` in the same transaction that locked the rows. A
  crash between the ack and the stamp publishes the batch again with the same event ids, which
  consumers keep once (the processor stores the first copy of an id): nothing lost, nothing
  counted twice;
- wakes on NOTIFY from the committing call (low latency), else every ``relay_idle_s``;
- every ``overdue_interval_s`` flags complaints past due (``ComplaintBook.mark_overdue``: once
  per complaint) and refreshes the per-entity gauges of open and overdue complaints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from pcm_common.kafka.producer import BrokerUnavailable, EventProducer
from pcm_common.logging import get_logger
from pcm_common.postgres.client import connect
from pcm_common.settings import Settings
from psycopg.rows import TupleRow

from pcm_complaints.book import OUTBOX_CHANNEL, ComplaintBook, Connections
from pcm_complaints.metrics import (
    LEADER,
    MARKED_OVERDUE,
    OPEN,
    OUTBOX_OLDEST,
    OUTBOX_PENDING,
    OUTBOX_PUBLISHED,
    OVERDUE,
    OVERDUE_JOB_SUCCESS,
    RELAY_ERRORS,
)

log = get_logger(__name__)

LEADER_LOCK = int.from_bytes(
    hashlib.sha256(b"pcm-complaints-worker").digest()[:8], "big", signed=True
)


class Relay:
    """Outbox rows to Kafka, in order, acknowledged before they are marked published."""

    def __init__(
        self, connections: Connections, producer: EventProducer, topic: str, batch: int
    ) -> None:
        self._connections = connections
        self._producer = producer
        self._topic = topic
        self._batch = batch

    def publish_batch(self) -> int:
        """Publish up to one batch; how many rows were published."""
        with self._connections.connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT id, entity_id, envelope FROM complaint_outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self._batch,),
            ).fetchall()
            if not rows:
                return 0
            records = [(entity.encode(), bytes(envelope)) for _, entity, envelope in rows]
            self._producer.send_and_wait(self._topic, records)
            conn.execute(
                "UPDATE complaint_outbox SET published_at = now() WHERE id = ANY(%s)",
                ([row_id for row_id, _, _ in rows],),
            )
        OUTBOX_PUBLISHED.inc(len(rows))
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
                "FROM complaint_outbox WHERE published_at IS NULL"
            ).fetchone()
        assert row is not None
        OUTBOX_PENDING.set(int(row[0]))
        OUTBOX_OLDEST.set(float(row[1]))

    def purge(self, retention_days: int) -> None:
        with self._connections.connection() as conn:
            conn.execute(
                "DELETE FROM complaint_outbox "
                "WHERE published_at < now() - make_interval(days => %s)",
                (retention_days,),
            )


class OverdueJob:
    """Flags complaints past due once and keeps the per-entity gauges."""

    def __init__(self, book: ComplaintBook, today: Callable[[], dt.date]) -> None:
        self._book = book
        self._today = today

    def run(self) -> int:
        today = self._today()
        marked = 0
        while batch := self._book.mark_overdue(today):
            for record in batch:
                MARKED_OVERDUE.labels(entity=record.entity_id).inc()
            marked += len(batch)
        OPEN.clear()
        OVERDUE.clear()
        for entity, open_, overdue in self._book.counts():
            OPEN.labels(entity=entity).set(open_)
            OVERDUE.labels(entity=entity).set(overdue)
        OVERDUE_JOB_SUCCESS.set(time.time())
        if marked:
            log.info("complaints marked overdue", complaints=marked, today=today.isoformat())
        return marked


def local_today(time_zone: str, override: dt.date | None = None) -> Callable[[], dt.date]:
    zone = ZoneInfo(time_zone)
    return lambda: override or dt.datetime.now(zone).date()


class Worker:
    """The leader loop (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        relay: Relay,
        overdue: OverdueJob,
        overdue_interval_s: float,
        idle_s: float,
        retention_days: int,
        on_stop: Callable[[], Any] = lambda: None,
    ) -> None:
        self._settings = settings
        self._on_stop = on_stop
        self._relay = relay
        self._overdue = overdue
        self._overdue_interval_s = overdue_interval_s
        self._idle_s = idle_s
        self._retention_days = retention_days
        self.stopping = threading.Event()
        self._leader: psycopg.Connection[TupleRow] | None = None
        self._last_overdue = float("-inf")
        self._last_purge = float("-inf")

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._lead():
                    LEADER.set(0)
                    self.stopping.wait(self._idle_s)
                    continue
                LEADER.set(1)
                self._work()
                self._wait_for_commits()
            except BrokerUnavailable as error:
                RELAY_ERRORS.inc()
                log.warning("relay: broker unavailable, retrying", error=str(error))
                self.stopping.wait(self._idle_s)
            except psycopg.Error as error:
                RELAY_ERRORS.inc()
                log.warning("worker: PostgreSQL unavailable, retrying", error=str(error))
                self._drop_leadership()
                self.stopping.wait(self._idle_s)
        self._drop_leadership()
        self._on_stop()

    def _lead(self) -> bool:
        """Hold the leader lock on a connection of our own (released if it dies)."""
        if self._leader is not None and not self._leader.closed:
            return True
        conn = connect(self._settings, autocommit=True, application_name="pcm-complaints-worker")
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        self._leader = conn
        log.info("complaints worker leads")
        return True

    def _drop_leadership(self) -> None:
        if self._leader is not None:
            self._leader.close()
            self._leader = None
        # Only the leader reports the book: a former leader's figures would go stale (and
        # keep alerts firing that the new leader already cleared).
        LEADER.set(0)
        for gauge in (OPEN, OVERDUE):
            gauge.clear()
        OUTBOX_PENDING.set(0)
        OUTBOX_OLDEST.set(0)

    def _work(self) -> None:
        self._relay.drain()
        now = time.monotonic()
        if now - self._last_overdue >= self._overdue_interval_s:
            self._overdue.run()
            self._last_overdue = now
            self._relay.drain()  # the overdue events just committed
        if now - self._last_purge >= 3_600:
            self._relay.purge(self._retention_days)
            self._last_purge = now
        self._relay.refresh_gauges()

    def _wait_for_commits(self) -> None:
        assert self._leader is not None
        # Also proves the leader connection alive: a dead one raises and leadership is dropped.
        for _ in self._leader.notifies(timeout=self._idle_s, stop_after=1):
            pass
