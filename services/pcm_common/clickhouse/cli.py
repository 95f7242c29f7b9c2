"""`pcm-migrate`: apply the ClickHouse schema migrations (idempotent) and list their state."""

from __future__ import annotations

import argparse

from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import applied_ids, discover, migrate
from pcm_common.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-migrate", description=__doc__)
    parser.add_argument("action", nargs="?", choices=["apply", "status"], default="apply")
    args = parser.parse_args(argv)
    settings = load_settings()
    client = connect(settings, database="default")
    db = settings.clickhouse_database
    if args.action == "apply":
        applied = migrate(client, db)
        print(
            f"{db}: applied {len(applied)} migration(s)"
            + (f": {', '.join(applied)}" if applied else "")
        )
        return 0
    done = applied_ids(client, db)
    for migration in discover():
        print(f"{'applied' if migration.id in done else 'pending':8} {migration.id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
