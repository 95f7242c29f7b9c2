"""PostgreSQL migrations of the national benchmark's tables (group ``benchmark``): the
improvement plans and their history."""
