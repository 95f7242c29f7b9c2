"""Peer distributions: per period, catalogue version, peer group ('' = national) and measure (a
standard's score, OVERALL's, or an entity-level KPI), the count and nearest-rank percentiles. What
an entity may see of its peers (never who they are), and the percentile bands of the dashboard."""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.benchmark_distributions (
        grain Enum8('MONTH' = 3, 'QUARTER' = 4, 'YEAR' = 5),
        period_start Date,
        catalogue_version String,
        peer_group String,
        measure_kind Enum8('standard' = 1, 'kpi' = 2),
        measure String,
        count UInt32,
        p10 Float64,
        p25 Float64,
        p50 Float64,
        p75 Float64,
        p90 Float64,
        mean Float64,
        computed_at DateTime
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYear(period_start)
    ORDER BY (grain, period_start, catalogue_version, peer_group, measure_kind, measure)
    """,
]
