"""Fact tables: one row per attention / procedure-stage event, as the processors insert them.

The column lists are declared once, in ``pcm_common.domains`` (``FactTable``); a test fails when
these statements and that declaration disagree (tests/unit/test_fact_tables.py).

Engine choice: ReplacingMergeTree keyed by event id (last in ORDER BY) collapses copies of an
event on merge, and its version ``first_copy_version`` (2^64 - 1 - Kafka offset) makes the
*first* copy win: an event id, once stored, is never overwritten by a later message with the
same id. KPI queries never rely on merges having happened (they take the first copy per ticket /
procedure step with argMin by offset). Bucket columns (hour, day, month starts in the platform's
time zone) are computed by the processor so queries stay portable across ClickHouse 18.16 and
current releases (no timezone-argument functions needed). Enum labels are the proto enum names
without their type prefix (TICKET_SERVED, RESOLVED): the vocabulary of the KPI catalogue's
filters (catalogues/kpis.yaml), so a filter needs no translation.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.attention_events (
        entity_id String,
        event_id String,
        ticket_id String,
        kind Enum8('TICKET_ISSUED' = 1, 'TICKET_CALLED' = 2, 'TICKET_SERVED' = 3,
                   'TICKET_ABANDONED' = 4),
        channel String,
        service_id String,
        office_id String,
        preferential UInt8,
        digital UInt8,
        target_wait_s UInt32,
        issued_at DateTime,
        called_at DateTime,
        finished_at DateTime,
        hour_start DateTime,
        day_start DateTime,
        month_start DateTime,
        received_at DateTime,
        kafka_partition UInt16,
        kafka_offset UInt64,
        first_copy_version UInt64
    ) ENGINE = ReplacingMergeTree(first_copy_version)
    PARTITION BY toYYYYMM(month_start)
    ORDER BY (entity_id, month_start, ticket_id, event_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.procedure_stage_events (
        entity_id String,
        event_id String,
        procedure_id String,
        service_id String,
        stage Enum8('FILED' = 1, 'ASSIGNED' = 2, 'IN_REVIEW' = 3, 'OBSERVED' = 4,
                    'RESUBMITTED' = 5, 'RESOLVED' = 6, 'NOTIFIED' = 7, 'ARCHIVED' = 8),
        channel String,
        unit_id String,
        sequence UInt32,
        filed_at DateTime,
        occurred_at DateTime,
        legal_term_days UInt16,
        business_days_elapsed UInt16,
        hour_start DateTime,
        day_start DateTime,
        month_start DateTime,
        received_at DateTime,
        kafka_partition UInt16,
        kafka_offset UInt64,
        first_copy_version UInt64
    ) ENGINE = ReplacingMergeTree(first_copy_version)
    PARTITION BY toYYYYMM(month_start)
    ORDER BY (entity_id, month_start, procedure_id, event_id)
    """,
]
