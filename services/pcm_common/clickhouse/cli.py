"""`pcm-migrate`: apply the schema migrations (idempotent) and list their state.

Both stores by default: ClickHouse (facts, KPIs) and PostgreSQL (transactional state);
``--store`` picks one, e.g. for a migration job that holds only that store's password.
"""

from __future__ import annotations

import argparse

from pcm_common.clickhouse import migrate as clickhouse_migrate
from pcm_common.clickhouse.client import connect
from pcm_common.postgres import client as postgres_client
from pcm_common.postgres import migrate as postgres_migrate
from pcm_common.settings import Settings, load_settings

STORES = ("clickhouse", "postgres")


def _applied_line(where: str, applied: list[str]) -> str:
    return f"{where}: applied {len(applied)} migration(s)" + (
        f": {', '.join(applied)}" if applied else ""
    )


def _clickhouse(settings: Settings, action: str) -> None:
    client = connect(settings, database="default")
    db = settings.clickhouse_database
    if action == "apply":
        print(_applied_line(db, clickhouse_migrate.migrate(client, db)))
        return
    done = clickhouse_migrate.applied_ids(client, db)
    for migration in clickhouse_migrate.discover():
        print(f"{'applied' if migration.id in done else 'pending':8} {migration.id}")


def _postgres(settings: Settings, action: str) -> None:
    where = f"{settings.postgres_database} [postgres]"
    with postgres_client.connect(settings, application_name="pcm-migrate") as conn:
        if action == "apply":
            print(_applied_line(where, postgres_migrate.migrate(conn)))
            return
        done = postgres_migrate.applied_ids(conn)
        for migration in postgres_migrate.discover():
            state = "applied" if migration.id in done else "pending"
            print(f"{state:8} {migration.id} [postgres]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-migrate", description=__doc__)
    parser.add_argument("action", nargs="?", choices=["apply", "status"], default="apply")
    parser.add_argument("--store", choices=[*STORES, "all"], default="all")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.store in ("clickhouse", "all"):
        _clickhouse(settings, args.action)
    if args.store in ("postgres", "all"):
        _postgres(settings, args.action)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
