"""What a service does before serving: topics and schemas exist, waiting (bounded) for the
stores to come up, so that a pod started before Kafka, ClickHouse or PostgreSQL still starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from tenacity import Retrying, stop_after_delay, wait_exponential

from pcm_common.logging import get_logger
from pcm_common.migrations import MigrationGroup
from pcm_common.settings import Settings

log = get_logger(__name__)
PREPARE_TIMEOUT_S = 300.0


def retrying(action: Callable[[], object], timeout_s: float = PREPARE_TIMEOUT_S) -> None:
    for attempt in Retrying(
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(timeout_s),
        reraise=True,
    ):
        with attempt:
            action()


def ensure_topics(settings: Settings) -> None:
    from pcm_common.kafka.admin import ensure_topics as create

    create(settings.kafka_bootstrap, settings.topic_prefix, settings.kafka_replication_factor)


def migrate_clickhouse(settings: Settings, groups: Sequence[MigrationGroup]) -> None:
    from pcm_common.clickhouse.client import connect
    from pcm_common.clickhouse.migrate import migrate

    client = connect(settings, database="default")
    try:
        migrate(client, settings.clickhouse_database, groups)
    finally:
        client.disconnect()


def migrate_postgres(settings: Settings, groups: Sequence[MigrationGroup] | None = None) -> None:
    """Apply the PostgreSQL migrations of ``groups`` (default: every group)."""
    from pcm_common.postgres.client import connect
    from pcm_common.postgres.migrate import POSTGRES_GROUPS, migrate

    groups = POSTGRES_GROUPS if groups is None else groups
    with connect(settings, autocommit=True) as connection:
        migrate(connection, groups)


S = TypeVar("S", bound=Settings)


def service_main(
    prog: str,
    description: str | None,
    settings_type: type[S],
    commands: Mapping[str, Callable[[S], None]],
    argv: list[str] | None = None,
) -> int:
    """A service's command line: ``<prog> <command>``, settings from the environment, logging
    configured; a broken catalogue ends with its error and exit status 2."""
    # Imported here: the catalogue package is heavy and only services need it.
    from pcm_common.catalogues import CatalogueError
    from pcm_common.logging import configure_logging

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("command", choices=sorted(commands))
    args = parser.parse_args(argv)
    settings = settings_type()
    configure_logging(settings.log_level, settings.log_json)
    try:
        commands[args.command](settings)
    except CatalogueError as error:
        print(f"error: {error}")
        return 2
    return 0
