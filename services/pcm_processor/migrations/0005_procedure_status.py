"""Where each procedure stands against its legal term (pcm_processor/terms.py writes it).

One row per procedure and computation; the newest ``version`` (stage events seen, then time)
is the status. Derived from the stage facts alone, so it can always be rebuilt from them. The
column list is declared once in ``pcm_processor.terms.PROCEDURE_STATUS`` and checked against
this statement by the migration tests.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.procedure_status (
        entity_id String,
        procedure_id String,
        service_id String,
        channel String,
        region String,
        received_on Date,
        term_days UInt16,
        paused_days UInt16,
        waiting_on_citizen UInt8,
        due_on Date,
        resolved UInt8,
        resolved_on Date,
        stage_events UInt32,
        catalogue_version String,
        version UInt64
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY (entity_id, procedure_id)
    """,
]
