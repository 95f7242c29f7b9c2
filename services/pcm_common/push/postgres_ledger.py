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
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

import psycopg
from psycopg_pool import ConnectionPool

from pcm_common.logging import get_logger
from pcm_common.postgres.client import pool
from pcm_common.push.ledger import Claim, LedgerUnavailable
from pcm_common.settings import Settings

log = get_logger(__name__)

ASYNC_COMMIT = "-c synchronous_commit=off"
"""Session option of the ledger's connections (see the module docstring)."""

# Keys travel as one bytea of 16-byte digests (adapting hundreds of values one by one costs the
# intake more CPU than PostgreSQL spends inserting them) and are cut apart by the server.
_KEYS = """
SELECT encode(substring(%(keys)s::bytea FROM i * 16 + 1 FOR 16), 'hex')::uuid AS key
FROM generate_series(0, length(%(keys)s::bytea) / 16 - 1) AS i
"""

# Keys are inserted in order (here and in confirmations) so that two statements locking some of
# the same rows rarely deadlock (a deadlock is retried). The claimed keys are this call's: new
# ones, and stale claims of a replica that died before confirming (older than the lease). They
# are listed only when some are missing (a resend: rare); otherwise only their count comes back.
_CLAIM = f"""
WITH input AS ({_KEYS}),
claimed AS (
    INSERT INTO event_ledger AS l (key)
    SELECT key FROM input ORDER BY key
    ON CONFLICT (key) DO UPDATE SET claimed_at = now()
        WHERE NOT l.confirmed AND l.claimed_at < now() - %(lease)s
    RETURNING key
)
SELECT count(*),
       CASE WHEN count(*) < length(%(keys)s::bytea) / 16 THEN array_agg(uuid_send(key)) END
FROM claimed
"""

# Confirmed: stored by an earlier call. Not confirmed: another call is producing it. Not found:
# a concurrent claim not yet committed, also in progress.
_STATE = f"""
SELECT uuid_send(key), confirmed FROM event_ledger WHERE key IN ({_KEYS})
"""

_CONFIRM = f"""
UPDATE event_ledger SET confirmed = true WHERE key IN ({_KEYS}) AND NOT confirmed
"""

_RELEASE = f"DELETE FROM event_ledger WHERE key IN ({_KEYS}) AND NOT confirmed"

_PURGE = "DELETE FROM event_ledger WHERE claimed_at < now() - %(age)s"


def ledger_pool(settings: Settings, max_size: int, timeout_s: float = 5) -> ConnectionPool:
    """Connections for the ledger: asynchronous commits, no check round trip on checkout (a
    claim retries once on a connection dropped by a server restart)."""
    return pool(
        settings,
        max_size=max_size,
        timeout_s=timeout_s,
        application_name="pcm-push",
        check_on_checkout=False,
        server_options=ASYNC_COMMIT,
    )


def ledger_key(domain: str, entity_id: str, event_id: str) -> bytes:
    """The row key of one event id: a 128-bit digest (collisions: never in practice)."""
    return hashlib.blake2b(f"{entity_id}\0{domain}\0{event_id}".encode(), digest_size=16).digest()


def _keys(domain: str, entity_id: str, event_ids: Sequence[str]) -> list[bytes]:
    return [ledger_key(domain, entity_id, event_id) for event_id in event_ids]


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
        self._max_pending = max_pending_confirmations
        self._pending: deque[bytes] = deque()  # appends and pops are atomic in CPython
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._confirm_forever, daemon=True)
        self._writer.start()

    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        if not event_ids:
            return []
        keys = _keys(domain, entity_id, event_ids)
        for attempt in range(3):
            try:
                return self._claim(keys)
            except psycopg.errors.TransactionRollback:
                if attempt == 2:  # a deadlock with a concurrent confirmation, three times
                    raise
            except psycopg.OperationalError as error:
                # A pooled connection dropped by a server restart fails once (the pool then
                # discards it); a second failure on a fresh connection means the server is gone.
                if attempt >= 1:
                    raise LedgerUnavailable(str(error)) from error
        raise AssertionError("unreachable")

    def _claim(self, keys: list[bytes]) -> list[Claim]:
        blob = b"".join(keys)
        with self._pool.connection() as connection:
            row = connection.execute(_CLAIM, {"keys": blob, "lease": self._lease}).fetchone()
            assert row is not None  # an aggregate always answers one row
            count, claimed = row
            if count == len(keys):
                return [Claim.NEW] * len(keys)
            mine = set(claimed or ())
            others = b"".join(key for key in keys if key not in mine)
            states: dict[bytes, bool] = dict(
                connection.execute(_STATE, {"keys": others}).fetchall()
            )
        return [
            Claim.NEW if key in mine else Claim.DUPLICATE if states.get(key) else Claim.IN_PROGRESS
            for key in keys
        ]

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        if len(self._pending) >= self._max_pending:
            # PostgreSQL has been down long: the claims expire after the lease instead.
            log.warning("ledger confirmations backlog full; claims will expire instead")
            return
        self._pending.extend(_keys(domain, entity_id, event_ids))

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        keys = b"".join(_keys(domain, entity_id, event_ids))
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
        batch: list[bytes] = []
        while len(batch) < 50_000 and self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return
        batch.sort()
        try:
            with self._pool.connection() as connection:
                connection.execute(_CONFIRM, {"keys": b"".join(batch)})
        except psycopg.Error as error:
            log.warning("ledger confirmations failed; retrying", error=str(error))
            if len(self._pending) < self._max_pending:  # back in line, else claims expire
                self._pending.extendleft(batch)

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=10)
        self._pool.close()
