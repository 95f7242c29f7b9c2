"""PostgreSQL adapters: connections, pools and numbered, transactional schema migrations.

PostgreSQL keeps the platform's transactional state (the intake's event-id ledger, complaints);
ClickHouse keeps the facts and KPIs.
"""
