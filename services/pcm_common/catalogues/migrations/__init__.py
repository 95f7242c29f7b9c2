"""PostgreSQL migrations of the catalogue registry (group ``catalogues``)."""
