"""The periods whose snapshot KPIs (open and overdue at close, backlog age) were taken.

The term tracker records a period here after writing its snapshot values, so each is taken
once; a crash in between only means taking it again, with the same values.
"""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS {db}.period_closes (
        grain String,
        period_start DateTime,
        closed_at DateTime
    ) ENGINE = ReplacingMergeTree(closed_at)
    ORDER BY (grain, period_start)
    """,
]
