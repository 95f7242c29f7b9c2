"""Fixtures for tests on the real local stack: each module gets its own topics and databases.

A unique topic prefix, ClickHouse database and PostgreSQL database (migrated) per module keep
runs (and parallel developers on one machine) from seeing each other's data; all are removed at
the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from clickhouse_driver import Client
from kafka import KafkaAdminClient
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.topics import topic_names
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.postgres.migrate import migrate as migrate_postgres
from pcm_common.settings import Settings
from psycopg import sql


@pytest.fixture(scope="module")
def isolated_settings() -> Iterator[Settings]:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        topic_prefix=f"test-{run}.",
        clickhouse_database=f"pcm_test_{run}",
        postgres_database=f"pcm_test_{run}",
    )
    database = sql.Identifier(settings.postgres_database)
    with connect_postgres(settings, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(database))
    with connect_postgres(settings, autocommit=True) as connection:
        migrate_postgres(connection)
    yield settings
    with connect_postgres(settings, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
    connect(settings, database="default").execute(
        f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
    )


@pytest.fixture(scope="module")
def clickhouse(isolated_settings: Settings) -> Client:
    return connect(isolated_settings, database="default")


@pytest.fixture(scope="module")
def registry_topics(isolated_settings: Settings) -> list[str]:
    return topic_names(isolated_settings.topic_prefix)
