"""Topics and databases of one's own on the shared local stack.

A unique topic prefix, ClickHouse database and PostgreSQL database (migrated) per run keep tests
(and developers sharing one machine) from seeing each other's data, so a test passes alone, in
any order and next to others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient
from pcm_common.clickhouse.client import connect
from pcm_common.postgres.client import create_database, drop_database
from pcm_common.settings import Settings
from pcm_common.startup import migrate_postgres


@contextmanager
def isolated(kind: str = "test") -> Iterator[Settings]:
    """Settings with a fresh topic prefix and databases; all removed on exit."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        topic_prefix=f"{kind}-{run}.",
        clickhouse_database=f"pcm_{kind}_{run}",
        postgres_database=f"pcm_{kind}_{run}",
    )
    create_database(settings)
    try:
        migrate_postgres(settings)
        yield settings
    finally:
        remove(settings)


def remove(settings: Settings) -> None:
    """Delete the topics under ``settings``' prefix and drop its databases."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
    connect(settings, database="default").execute(
        f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
    )
    drop_database(settings)
