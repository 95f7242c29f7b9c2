"""A migration group whose only migration fails halfway, after its DDL already ran."""
