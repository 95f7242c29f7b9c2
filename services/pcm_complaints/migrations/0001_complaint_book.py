"""The complaint book: each complaint's record, every accepted event, and the outbox.

``complaints`` holds where each complaint stands (one row per entity and complaint code; no
personal data: the complainant is a keyed hash on the events only). ``complaint_transitions``
holds every accepted event id: its primary key answers a resend "duplicate" and makes a
transition stored once. ``complaint_outbox`` holds the events to publish, committed in the same
transaction as the state change; the worker's relay publishes them in ``id`` order and stamps
``published_at`` (partial index: the relay only ever reads unpublished rows).
"""

STATEMENTS = [
    """
    CREATE TABLE complaints (
        entity_id text NOT NULL,
        complaint_id text NOT NULL,
        stage text NOT NULL,
        filed_on date NOT NULL,
        term_business_days smallint NOT NULL,
        due_on date NOT NULL,
        term_basis text NOT NULL,
        channel text NOT NULL DEFAULT '',
        service_id text NOT NULL DEFAULT '',
        driver text NOT NULL DEFAULT '',
        category text NOT NULL DEFAULT '',
        answered_on date,
        business_days_to_answer integer NOT NULL DEFAULT 0,
        overdue_on date,
        transitions integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, complaint_id)
    )
    """,
    # The overdue job's question: open, not flagged yet, due before today.
    """
    CREATE INDEX complaints_running_terms ON complaints (due_on)
        WHERE stage = 'REGISTERED' AND overdue_on IS NULL
    """,
    """
    CREATE TABLE complaint_transitions (
        entity_id text NOT NULL,
        event_id text NOT NULL,
        complaint_id text NOT NULL,
        stage text NOT NULL,
        occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, event_id)
    )
    """,
    """
    CREATE TABLE complaint_outbox (
        id bigserial PRIMARY KEY,
        entity_id text NOT NULL,
        event_id text NOT NULL,
        envelope bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX complaint_outbox_unpublished ON complaint_outbox (id) WHERE published_at IS NULL",
]
