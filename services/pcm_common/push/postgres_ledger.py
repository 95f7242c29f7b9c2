"""The durable event-id ledger, in PostgreSQL: "duplicate" across restarts and replicas.

One statement claims a batch's ids atomically (INSERT ... ON CONFLICT): of two replicas claiming
the same id at once, exactly one gets it. Confirmations are written in the background, batched
across calls (one UPDATE every ``confirm_interval_s``), so the hot path costs one round trip per
call; a confirmation lost in a crash only leaves a claim that expires after the lease, after
which a resend is accepted again and the processors keep the first copy.

Claims and confirmations commit with ``synchronous_commit = off``: a PostgreSQL crash may forget
the last fraction of a second of them, which again only means a resend of those events is
accepted and stored once by the processors; the push path does not wait for a disk flush.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

import psycopg
from psycopg_pool import ConnectionPool

from pcm_common.logging import get_logger
from pcm_common.push.ledger import Claim, LedgerUnavailable

log = get_logger(__name__)

_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"

# Keys are inserted in order (here and in confirmations) so that two statements locking some of
# the same rows rarely deadlock (a deadlock is retried). RETURNING lists the keys this call now
# holds: new ones, and stale claims of a replica that died before confirming (older than the
# lease). Only when some are missing (a resend: rare) does a second statement ask why.
_CLAIM = """
INSERT INTO event_ledger AS l (key)
SELECT key FROM unnest(%(keys)s::uuid[]) AS key ORDER BY key
ON CONFLICT (key) DO UPDATE SET claimed_at = now()
    WHERE NOT l.confirmed AND l.claimed_at < now() - %(lease)s
RETURNING key
"""

# Confirmed: stored by an earlier call. Not confirmed: another call is producing it. Not found:
# a concurrent claim not yet committed, also in progress.
_STATE = "SELECT key, confirmed FROM event_ledger WHERE key = ANY(%(keys)s::uuid[])"

_CONFIRM = (
    "UPDATE event_ledger SET confirmed = true WHERE key = ANY(%(keys)s::uuid[]) AND NOT confirmed"
)

_RELEASE = "DELETE FROM event_ledger WHERE key = ANY(%(keys)s::uuid[]) AND NOT confirmed"

_PURGE = "DELETE FROM event_ledger WHERE claimed_at < now() - %(age)s"


def ledger_key(domain: str, entity_id: str, event_id: str) -> uuid.UUID:
    """The row key of one event id: a 128-bit digest (collisions: never in practice)."""
    digest = hashlib.blake2b(f"{entity_id}\0{domain}\0{event_id}".encode(), digest_size=16)
    return uuid.UUID(bytes=digest.digest())


class PostgresLedger:
    def __init__(
        self,
        pool: ConnectionPool,
        lease_s: float,
        retention: timedelta | None = None,
        confirm_interval_s: float = 0.05,
        max_pending_confirmations: int = 500_000,
        purge_interval_s: float = 3_600,
    ) -> None:
        self._pool = pool
        self._lease = timedelta(seconds=lease_s)
        self._retention = retention
        self._purge_interval_s = purge_interval_s
        self._interval_s = confirm_interval_s
        self._pending: queue.Queue[uuid.UUID] = queue.Queue(max_pending_confirmations)
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._confirm_forever, daemon=True)
        self._writer.start()

    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        if not event_ids:
            return []
        keys = [ledger_key(domain, entity_id, event_id) for event_id in event_ids]
        for attempt in range(3):
            try:
                return self._claim(keys)
            except psycopg.errors.TransactionRollback:
                if attempt == 2:  # a deadlock with a concurrent confirmation, three times
                    raise
            except psycopg.OperationalError as error:
                raise LedgerUnavailable(str(error)) from error
        raise AssertionError("unreachable")

    def _claim(self, keys: list[uuid.UUID]) -> list[Claim]:
        with self._pool.connection() as connection:
            connection.execute(_ASYNC_COMMIT)
            rows = connection.execute(_CLAIM, {"keys": keys, "lease": self._lease}).fetchall()
            mine = {key for (key,) in rows}
            if len(mine) == len(keys):
                return [Claim.NEW] * len(keys)
            others = [key for key in keys if key not in mine]
            states: dict[uuid.UUID, bool] = dict(
                connection.execute(_STATE, {"keys": others}).fetchall()
            )
        return [
            Claim.NEW if key in mine else Claim.DUPLICATE if states.get(key) else Claim.IN_PROGRESS
            for key in keys
        ]

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            try:
                self._pending.put_nowait(ledger_key(domain, entity_id, event_id))
            except queue.Full:
                # PostgreSQL has been down long: the claim expires after the lease instead.
                log.warning("ledger confirmations backlog full; a claim will expire instead")
                return

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        keys = [ledger_key(domain, entity_id, event_id) for event_id in event_ids]
        try:
            with self._pool.connection() as connection:
                connection.execute(_RELEASE, {"keys": keys})
        except psycopg.Error as error:
            # The claims then expire after the lease; a resend meanwhile is "in progress".
            log.warning("ledger release failed", entity=entity_id, error=str(error))

    def purge(self, older_than: timedelta) -> int:
        """Forget claims older than any event the services still accept; rows deleted."""
        with self._pool.connection() as connection:
            return connection.execute(_PURGE, {"age": older_than}).rowcount

    def _confirm_forever(self) -> None:
        """The background writer: confirmations every interval, the purge every hour."""
        purge_due = time.monotonic() + self._purge_interval_s
        while not self._stop.wait(self._interval_s):
            self._flush()
            if self._retention is not None and time.monotonic() >= purge_due:
                purge_due = time.monotonic() + self._purge_interval_s
                self._purge_quietly(self._retention)
        self._flush()

    def _purge_quietly(self, retention: timedelta) -> None:
        try:
            deleted = self.purge(retention)
        except psycopg.Error as error:  # tried again next hour
            log.warning("ledger purge failed", error=str(error))
            return
        if deleted:
            log.info("ledger purged", rows=deleted, older_than_days=retention.days)

    def _flush(self) -> None:
        batch: list[uuid.UUID] = []
        while len(batch) < 50_000:
            try:
                batch.append(self._pending.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        batch.sort()
        try:
            with self._pool.connection() as connection:
                connection.execute(_ASYNC_COMMIT)
                connection.execute(_CONFIRM, {"keys": batch})
        except psycopg.Error as error:
            log.warning("ledger confirmations failed; retrying", error=str(error))
            for key in batch:  # back in line; if it fills up, claims expire instead
                if self._pending.full():
                    break
                self._pending.put_nowait(key)

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=10)
        self._pool.close()
