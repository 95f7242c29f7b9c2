"""Fixtures for tests on the real local stack: each module gets its own topics and databases.

A unique topic prefix, ClickHouse database and PostgreSQL database (migrated) per module keep
runs (and parallel developers on one machine) from seeing each other's data; all are removed at
the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_driver import Client
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.topics import topic_names
from pcm_common.settings import Settings
from pcm_testkit.isolation import isolated


@pytest.fixture(scope="module")
def isolated_settings() -> Iterator[Settings]:
    with isolated("test") as settings:
        yield settings


@pytest.fixture(scope="module")
def clickhouse(isolated_settings: Settings) -> Client:
    return connect(isolated_settings, database="default")


@pytest.fixture(scope="module")
def registry_topics(isolated_settings: Settings) -> list[str]:
    return topic_names(isolated_settings.topic_prefix)
