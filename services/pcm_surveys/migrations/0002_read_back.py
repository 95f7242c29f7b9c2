"""What reading back needs besides the checks: every field of a collection as declared, and a
response's service, channel and answers (``scores``: a list of ``{driver, score, status}``,
``overall``: one such object or NULL when not sent).

Enum values are stored by name without their prefix (``IN_PERSON``, ``SPANISH``, ``SCORED``).
Rows stored before this migration read back with these fields empty.
"""

STATEMENTS = [
    """
    ALTER TABLE survey_collections
        ADD COLUMN service_id text NOT NULL DEFAULT '',
        ADD COLUMN channel text NOT NULL DEFAULT '',
        ADD COLUMN stage text NOT NULL DEFAULT '',
        ADD COLUMN interactions bigint NOT NULL DEFAULT 0,
        ADD COLUMN responses bigint NOT NULL DEFAULT 0,
        ADD COLUMN questionnaire_version text NOT NULL DEFAULT '',
        ADD COLUMN mode text NOT NULL DEFAULT '',
        ADD COLUMN language text NOT NULL DEFAULT ''
    """,
    """
    ALTER TABLE survey_responses
        ADD COLUMN service_id text NOT NULL DEFAULT '',
        ADD COLUMN channel text NOT NULL DEFAULT '',
        ADD COLUMN scores jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN overall jsonb
    """,
    # The keyset order of the lists (newest first), per entity.
    "CREATE INDEX survey_collections_listing ON survey_collections "
    "(entity_id, recorded_at DESC, collection_id DESC)",
    "CREATE INDEX survey_responses_listing ON survey_responses "
    "(entity_id, recorded_at DESC, event_id DESC)",
]
