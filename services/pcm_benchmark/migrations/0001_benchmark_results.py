"""Benchmark results: one row per entity, standard (or OVERALL) and period, per catalogue version;
and the evidence behind them, one row per criterion (``benchmark_criteria``).

Laid out for the dashboard's reads, which always name a grain and a period (the ranking of a
period, a standard's page): those lead the sort key, then the catalogue version, so results
recomputed under a new version sit beside the old ones instead of replacing them. A rerun of the
same period and version replaces its rows (the newest ``computed_at`` wins a merge)."""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.benchmark_results (
        grain Enum8('MONTH' = 3, 'QUARTER' = 4, 'YEAR' = 5),
        period_start Date,
        catalogue_version String,
        standard String,
        peer_group String,
        entity_id String,
        level String,
        score Float64,
        peer_rank UInt32,
        peer_count UInt32,
        peer_percentile Float64,
        national_rank UInt32,
        national_count UInt32,
        national_percentile Float64,
        met UInt16,
        not_met UInt16,
        no_evidence UInt16,
        insufficient_sample UInt16,
        not_applicable UInt16,
        gaps Array(String),
        computed_at DateTime
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYear(period_start)
    ORDER BY (grain, period_start, catalogue_version, standard, peer_group, entity_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.benchmark_criteria (
        grain Enum8('MONTH' = 3, 'QUARTER' = 4, 'YEAR' = 5),
        period_start Date,
        catalogue_version String,
        entity_id String,
        standard String,
        criterion_id String,
        level String,
        kpi_code String,
        indicator_code String,
        op String,
        threshold Float64,
        outcome String,
        value Nullable(Float64),
        numerator Float64,
        denominator Float64,
        reason String,
        verified UInt8,
        computed_at DateTime
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYear(period_start)
    ORDER BY (grain, period_start, catalogue_version, entity_id, standard, criterion_id)
    """,
]
