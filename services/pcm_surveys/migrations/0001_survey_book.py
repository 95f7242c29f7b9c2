"""The survey book: declared collections, accepted responses (with the free text, for the
entity's own reading only), and one outbox per published domain.

A response is checked against its collection in the same transaction that stores it (unknown
collection, outside its period); responses beyond the people offered are stored but flagged
(``beyond_offered``) and counted, never silently accepted.
"""

STATEMENTS = [
    """
    CREATE TABLE survey_collections (
        entity_id text NOT NULL,
        collection_id text NOT NULL,
        event_id text NOT NULL,
        period_start timestamptz NOT NULL,
        period_end timestamptz NOT NULL,
        offered bigint NOT NULL,
        responses_received bigint NOT NULL DEFAULT 0,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, collection_id),
        UNIQUE (entity_id, event_id)
    )
    """,
    """
    CREATE TABLE survey_responses (
        entity_id text NOT NULL,
        event_id text NOT NULL,
        collection_id text NOT NULL,
        response_id text NOT NULL,
        answered_at timestamptz NOT NULL,
        comment text NOT NULL DEFAULT '',
        beyond_offered boolean NOT NULL DEFAULT false,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, event_id),
        UNIQUE (entity_id, collection_id, response_id)
    )
    """,
    """
    CREATE TABLE survey_collection_outbox (
        id bigserial PRIMARY KEY,
        entity_id text NOT NULL,
        event_id text NOT NULL,
        envelope bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX survey_collection_outbox_unpublished ON survey_collection_outbox (id) "
    "WHERE published_at IS NULL",
    """
    CREATE TABLE survey_response_outbox (
        id bigserial PRIMARY KEY,
        entity_id text NOT NULL,
        event_id text NOT NULL,
        envelope bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX survey_response_outbox_unpublished ON survey_response_outbox (id) "
    "WHERE published_at IS NULL",
]
