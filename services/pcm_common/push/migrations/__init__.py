"""PostgreSQL migrations of the push kit's event-id ledger (group ``push``)."""
