"""Complaint facts: one row per lifecycle event the complaints service published.

Same engine and rules as the other fact tables (0001): the first copy of an event id wins. The
events carry the platform's term fields (due date, term); the processor adds the business days
to the answer and whether it came on time. Answers and OVERDUE events are dated by the due date
(``pcm_processor.domain.facts.complaint_row``): the KPIs of answers within term are about the
complaints whose term fell due in a period.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.complaint_events (
        entity_id String,
        event_id String,
        complaint_id String,
        stage Enum8('REGISTERED' = 1, 'ANSWERED' = 2, 'NOTIFIED' = 3, 'FOLLOW_UP' = 4,
                    'CLOSED' = 5, 'ARCHIVED' = 6, 'NOT_A_RECLAMO' = 7, 'TRANSFERRED' = 8,
                    'WITHDRAWN' = 9, 'RESOLVED_AT_DESK' = 10, 'OVERDUE' = 11),
        channel String,
        service_id String,
        driver String,
        category String,
        filed_at DateTime,
        occurred_at DateTime,
        due_on Date,
        term_business_days UInt16,
        answer_business_days UInt16,
        on_time UInt8,
        hour_start DateTime,
        day_start DateTime,
        month_start DateTime,
        received_at DateTime,
        kafka_partition UInt16,
        kafka_offset UInt64,
        first_copy_version UInt64
    ) ENGINE = ReplacingMergeTree(first_copy_version)
    PARTITION BY toYYYYMM(month_start)
    ORDER BY (entity_id, month_start, complaint_id, event_id)
    """,
]
