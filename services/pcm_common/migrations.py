"""Numbered schema migrations, grouped by the service that owns the tables (as snuba does).

A group is a package of modules ``NNNN_name.py``, each with ``STATEMENTS``: SQL templates that
are idempotent on their own (``IF NOT EXISTS``), so a crash between a statement and its
bookkeeping is harmless. A migration's id is ``<owner>/<NNNN_name>``; the store-specific
runners (``pcm_common.clickhouse.migrate``, ``pcm_common.postgres.migrate``) apply the groups in
order, each migration at most once.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_MIGRATION_NAME = re.compile(r"^(\d{4})_\w+$")


@dataclass(frozen=True)
class Migration:
    owner: str
    name: str
    statements: tuple[Any, ...]
    """SQL text, or a store-specific statement object (e.g. clickhouse.migrate.AddColumn)."""

    @property
    def id(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class MigrationGroup:
    """The migrations of one owner's tables in one store."""

    owner: str
    package: str
    """Dotted name of the package holding the ``NNNN_name.py`` modules."""

    def discover(self) -> list[Migration]:
        """Every migration of the group, ordered by number."""
        package = importlib.import_module(self.package)
        found = []
        for module in pkgutil.iter_modules(package.__path__):
            if _MIGRATION_NAME.match(module.name):
                loaded = importlib.import_module(f"{self.package}.{module.name}")
                found.append(Migration(self.owner, module.name, tuple(loaded.STATEMENTS)))
        return sorted(found, key=lambda migration: migration.name)


def discover_all(groups: Iterable[MigrationGroup]) -> list[Migration]:
    """The migrations of every group, group by group in the order given."""
    return [migration for group in groups for migration in group.discover()]
