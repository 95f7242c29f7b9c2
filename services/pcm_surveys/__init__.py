"""The surveys service: survey collections and responses on the six drivers, validated, kept in
a PostgreSQL book (free text for the entity's own reading only) and published through an outbox;
the processor turns them into survey and satisfaction KPIs."""
