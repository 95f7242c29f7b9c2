"""The event-id ledger: every (entity, domain, event id) a push service accepted.

``confirmed`` is false while the claiming call is producing; a claim that stays unconfirmed
longer than the lease (its replica died between claim and confirm) may be claimed again. Rows
older than the oldest event a service accepts are purged: a resend that old is refused anyway.
BRIN on ``claimed_at``: rows arrive in time order, so the purge finds them at almost no cost to
inserts.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS event_ledger (
        entity_id text NOT NULL,
        domain text NOT NULL,
        event_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        confirmed boolean NOT NULL DEFAULT false,
        PRIMARY KEY (entity_id, domain, event_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS event_ledger_claimed_at ON event_ledger USING brin (claimed_at)",
]
