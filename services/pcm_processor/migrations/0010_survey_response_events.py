"""Survey answer facts: one row per question of each response the surveys service published
(every catalogue driver and OVERALL; NOT_ASKED when the questionnaire did not ask it), dated by
when it was answered. No free text: the comment is never published. Same engine and rules as 0001;
the driver is in the sorting key so that a response's rows are kept apart by the merge."""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.survey_response_events (
        entity_id String,
        event_id String,
        response_id String,
        collection_id String,
        service_id String,
        channel String,
        driver String,
        status String,
        score UInt8,
        answered_at DateTime,
        hour_start DateTime,
        day_start DateTime,
        month_start DateTime,
        received_at DateTime,
        kafka_partition UInt16,
        kafka_offset UInt64,
        first_copy_version UInt64
    ) ENGINE = ReplacingMergeTree(first_copy_version)
    PARTITION BY toYYYYMM(month_start)
    ORDER BY (entity_id, month_start, response_id, driver, event_id)
    """,
]
