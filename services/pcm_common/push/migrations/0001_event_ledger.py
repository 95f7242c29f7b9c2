"""The event-id ledger: every (entity, domain, event id) a push service accepted.

The key is a 128-bit digest of the three (``pcm_common.push.postgres_ledger.ledger_key``): a
fixed-size key keeps the index small and its inserts cheap on the hot path of every push, and
the ledger never needs the ids back. ``confirmed`` is false while the claiming call is
producing; a claim that stays unconfirmed longer than the lease (its replica died between claim
and confirm) may be claimed again. Rows older than the oldest event a service accepts are purged:
a resend that old is refused anyway. Pages are left 20% free so that the
confirmation (an update of a column no index covers) stays on its page (a HOT update: no index
write). BRIN on ``claimed_at``: rows arrive in time order, so the
purge finds them at almost no cost to inserts.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS event_ledger (
        key uuid PRIMARY KEY,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        confirmed boolean NOT NULL DEFAULT false
    ) WITH (fillfactor = 80)
    """,
    "CREATE INDEX IF NOT EXISTS event_ledger_claimed_at ON event_ledger USING brin (claimed_at)",
]
