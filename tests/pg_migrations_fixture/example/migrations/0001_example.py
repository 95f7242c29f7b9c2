"""A table, and a pause that makes concurrent runs overlap while one of them holds the lock."""

STATEMENTS = (
    "CREATE TABLE example_items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE)",
    "SELECT pg_sleep(0.3)",
)
