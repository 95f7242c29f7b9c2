"""ClickHouse migrations of the tables the stream processors own (facts and KPI values).

Numbered, idempotent, applied by ``pcm_common.clickhouse.migrate`` (group ``processor``).
"""
