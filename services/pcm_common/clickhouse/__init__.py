"""ClickHouse adapters: connection and versioned, idempotent schema migrations."""
