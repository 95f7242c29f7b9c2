"""The indicator book: every reported value (history included) and the outbox.

One row per accepted report (its event id is the key: a resend is a duplicate). The current
value of an (entity, indicator, grain, period) is the one not superseded; a correction marks the
previous one SUPERSEDED (``superseded_by``) in the same transaction as it is inserted, so both
stay. ``status`` and the review columns are set by the oversight body's review.
"""

STATEMENTS = [
    """
    CREATE TABLE indicator_reports (
        entity_id text NOT NULL,
        event_id text NOT NULL,
        indicator_code text NOT NULL,
        grain text NOT NULL,
        period_start date NOT NULL,
        value double precision NOT NULL,
        unit text NOT NULL,
        evidence jsonb NOT NULL,
        reported_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        status text NOT NULL,
        review_reason text NOT NULL DEFAULT '',
        reviewed_at timestamptz,
        superseded_by text,
        PRIMARY KEY (entity_id, event_id)
    )
    """,
    # One current value per indicator and period (the database refuses a second).
    """
    CREATE UNIQUE INDEX indicator_reports_current
        ON indicator_reports (entity_id, indicator_code, grain, period_start)
        WHERE superseded_by IS NULL
    """,
    "CREATE INDEX indicator_reports_listing ON indicator_reports (entity_id, recorded_at DESC)",
    """
    CREATE TABLE indicator_outbox (
        id bigserial PRIMARY KEY,
        entity_id text NOT NULL,
        event_id text NOT NULL,
        envelope bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX indicator_outbox_unpublished ON indicator_outbox (id) WHERE published_at IS NULL",
]
