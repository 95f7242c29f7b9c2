"""Not idempotent on purpose: applied twice, the UNIQUE name would fail (or a row be doubled)."""

STATEMENTS = ("INSERT INTO example_items (name) VALUES ('seed')",)
