"""KPI values per entity, grain, period and slice (channel, service; '' = all).

Recomputed from the facts for every period a batch touched; the newest `version` wins, so a
recomputation after a crash or replay overwrites with the same value instead of adding to it.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.kpi_values (
        entity_id String,
        kpi_code String,
        grain Enum8('HOUR' = 1, 'DAY' = 2, 'MONTH' = 3),
        period_start DateTime,
        channel String,
        service_id String,
        value Float64,
        numerator Float64,
        denominator Float64,
        computed_at DateTime,
        version UInt64
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(period_start)
    ORDER BY (entity_id, grain, period_start, kpi_code, channel, service_id)
    """,
]
