"""Survey collection facts: one row per collection the surveys service published, dated by the
end of its period (the period the collection reports on). Same engine and rules as 0001."""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.survey_collection_events (
        entity_id String,
        event_id String,
        collection_id String,
        service_id String,
        channel String,
        stage String,
        period_start DateTime,
        period_end DateTime,
        interactions UInt64,
        offered UInt64,
        responses UInt64,
        hour_start DateTime,
        day_start DateTime,
        month_start DateTime,
        received_at DateTime,
        kafka_partition UInt16,
        kafka_offset UInt64,
        first_copy_version UInt64
    ) ENGINE = ReplacingMergeTree(first_copy_version)
    PARTITION BY toYYYYMM(month_start)
    ORDER BY (entity_id, month_start, collection_id, event_id)
    """,
]
