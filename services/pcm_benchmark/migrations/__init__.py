"""ClickHouse migrations of the national benchmark's tables (group ``benchmark``)."""
