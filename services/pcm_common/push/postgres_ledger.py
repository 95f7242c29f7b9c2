"""The durable event-id ledger, in PostgreSQL: "duplicate" across restarts and replicas.

One statement claims a batch's ids atomically (INSERT ... ON CONFLICT): of two replicas claiming
the same id at once, exactly one gets it. Confirmations are written in the background, batched
across calls (one UPDATE every ``confirm_interval_s``), so the hot path costs one round trip per
call; a confirmation lost in a crash only leaves a claim that expires after the lease, after
which a resend is accepted again and the processors keep the first copy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from datetime import timedelta

import psycopg
from psycopg_pool import ConnectionPool

from pcm_common.logging import get_logger
from pcm_common.push.ledger import Claim, LedgerUnavailable

log = get_logger(__name__)

# Rows are taken in id order (here and in confirmations) so that two statements locking some of
# the same rows rarely deadlock (a deadlock is retried). The final SELECT of a data-modifying CTE
# sees the table as it was before this statement, so ids it finds existed already (confirmed:
# duplicate; not: another call holds them), ids in `claimed` are this call's, and ids in neither
# were claimed by a concurrent call meanwhile (in progress).
_CLAIM = """
WITH input AS (SELECT unnest(%(ids)s::text[]) AS event_id),
claimed AS (
    INSERT INTO event_ledger AS l (entity_id, domain, event_id)
    SELECT %(entity)s, %(domain)s, event_id FROM input ORDER BY event_id
    ON CONFLICT (entity_id, domain, event_id) DO UPDATE SET claimed_at = now()
        WHERE NOT l.confirmed AND l.claimed_at < now() - %(lease)s
    RETURNING event_id
)
SELECT event_id, 'new' FROM claimed
UNION ALL
SELECT event_id, CASE WHEN confirmed THEN 'duplicate' ELSE 'in_progress' END
FROM event_ledger
WHERE entity_id = %(entity)s AND domain = %(domain)s
  AND event_id IN (SELECT event_id FROM input)
  AND event_id NOT IN (SELECT event_id FROM claimed)
"""

_CONFIRM = """
UPDATE event_ledger SET confirmed = true
FROM unnest(%(entities)s::text[], %(domains)s::text[], %(ids)s::text[]) AS c(entity, dom, id)
WHERE entity_id = c.entity AND domain = c.dom AND event_id = c.id
"""

_RELEASE = """
DELETE FROM event_ledger
WHERE entity_id = %(entity)s AND domain = %(domain)s AND event_id = ANY(%(ids)s)
  AND NOT confirmed
"""

_PURGE = "DELETE FROM event_ledger WHERE claimed_at < now() - %(age)s"

Confirmation = tuple[str, str, str]  # (entity, domain, event id)


class PostgresLedger:
    def __init__(
        self,
        pool: ConnectionPool,
        lease_s: float,
        confirm_interval_s: float = 0.05,
        max_pending_confirmations: int = 500_000,
    ) -> None:
        self._pool = pool
        self._lease = timedelta(seconds=lease_s)
        self._interval_s = confirm_interval_s
        self._pending: queue.Queue[Confirmation] = queue.Queue(max_pending_confirmations)
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._confirm_forever, daemon=True)
        self._writer.start()

    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        if not event_ids:
            return []
        params = {"ids": list(event_ids), "entity": entity_id, "domain": domain}
        rows = self._run_claim({**params, "lease": self._lease})
        found = {event_id: Claim(state) for event_id, state in rows}
        # Absent: a concurrent call inserted it after this statement's snapshot.
        return [found.get(event_id, Claim.IN_PROGRESS) for event_id in event_ids]

    def _run_claim(self, params: dict[str, object]) -> list[tuple[str, str]]:
        for attempt in range(3):
            try:
                with self._pool.connection() as connection:
                    return connection.execute(_CLAIM, params).fetchall()
            except psycopg.errors.TransactionRollback:
                if attempt == 2:  # a deadlock with a concurrent confirmation, three times
                    raise
            except psycopg.OperationalError as error:
                raise LedgerUnavailable(str(error)) from error
        raise AssertionError("unreachable")

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            try:
                self._pending.put_nowait((entity_id, domain, event_id))
            except queue.Full:
                # PostgreSQL has been down long: the claim expires after the lease instead.
                log.warning("ledger confirmations backlog full; a claim will expire instead")
                return

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        try:
            with self._pool.connection() as connection:
                connection.execute(
                    _RELEASE, {"ids": list(event_ids), "entity": entity_id, "domain": domain}
                )
        except psycopg.Error as error:
            # The claims then expire after the lease; a resend meanwhile is "in progress".
            log.warning("ledger release failed", entity=entity_id, error=str(error))

    def purge(self, older_than: timedelta) -> int:
        """Forget claims older than any event the services still accept; rows deleted."""
        with self._pool.connection() as connection:
            return connection.execute(_PURGE, {"age": older_than}).rowcount

    def _confirm_forever(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        batch: list[Confirmation] = []
        while len(batch) < 50_000:
            try:
                batch.append(self._pending.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        batch.sort()
        entities, domains, ids = (list(column) for column in zip(*batch, strict=True))
        try:
            with self._pool.connection() as connection:
                connection.execute(_CONFIRM, {"entities": entities, "domains": domains, "ids": ids})
        except psycopg.Error as error:
            log.warning("ledger confirmations failed; retrying", error=str(error))
            for item in batch:  # back in line; if it fills up, claims expire instead
                if self._pending.full():
                    break
                self._pending.put_nowait(item)

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=10)
        self._pool.close()
