"""Publishing catalogue versions (the oversight body's act of putting a new rule set in force).

The files are validated first (a catalogue that does not load is never published); then each
versioned file (channels, drivers, kpis, standards) is recorded with its content, a SHA-256, the
author and a note, in one transaction. Publishing again what is already published changes
nothing; publishing other content under a published version is refused: a version names one
content forever, so every result that records the version it was computed under can be traced
to the exact rules (results under two versions live side by side, see the benchmark).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import psycopg

from .catalogue import Catalogues
from .errors import CatalogueError


@dataclass(frozen=True)
class PublishedVersion:
    catalogue: str
    version: str
    sha256: str
    author: str
    note: str
    published_at: dt.datetime
    new: bool = False
    """Published by this call (False: it was already, with the same content)."""


class VersionTaken(CatalogueError):
    """The version is already published with other content (a version names one content)."""


class _NothingRecorded(Exception):
    """Ends a validate-only publication's transaction: everything it wrote is rolled back."""


def publish(
    conn: psycopg.Connection[tuple[object, ...]],
    catalogues: Catalogues,
    author: str,
    note: str,
    validate_only: bool = False,
) -> list[PublishedVersion]:
    """Record every versioned catalogue file of ``catalogues`` (already validated by loading);
    ``validate_only``: answer as if, and record nothing."""
    if not author.strip() or not note.strip():
        raise ValueError("author and note are required: say who publishes and why")
    try:
        with conn.transaction():
            published = _record(conn, catalogues, author, note)
            if validate_only:
                raise _NothingRecorded
    except _NothingRecorded:
        pass
    return published


def _record(
    conn: psycopg.Connection[tuple[object, ...]], catalogues: Catalogues, author: str, note: str
) -> list[PublishedVersion]:
    published = []
    for name, version in sorted(catalogues.versions.items()):
        path = catalogues.directory / f"{name}.yaml"
        content = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(content.encode()).hexdigest()
        row = conn.execute(
            "INSERT INTO catalogue_versions "
            "(catalogue, version, sha256, content, author, note) VALUES "
            "(%s, %s, %s, %s, %s, %s) ON CONFLICT (catalogue, version) DO NOTHING "
            "RETURNING published_at",
            (name, version, digest, content, author.strip(), note.strip()),
        ).fetchone()
        if row is not None:
            published.append(
                PublishedVersion(name, version, digest, author, note, _aware(row[0]), True)
            )
            continue
        existing = _version(conn, name, version)
        if existing.sha256 != digest:
            raise VersionTaken(
                path,
                None,
                "version",
                f"{version} is already published with other content "
                f"(on {existing.published_at:%Y-%m-%d} by {existing.author}): "
                "give the new content a new version",
            )
        published.append(existing)
    return published


def history(
    conn: psycopg.Connection[tuple[object, ...]], catalogue: str | None = None
) -> list[PublishedVersion]:
    """Every published version, newest first (of one catalogue, or all)."""
    where = "" if catalogue is None else " WHERE catalogue = %s"
    rows = conn.execute(
        "SELECT catalogue, version, sha256, author, note, published_at FROM catalogue_versions"
        f"{where} ORDER BY published_at DESC, catalogue",
        () if catalogue is None else (catalogue,),
    ).fetchall()
    return [_published(row) for row in rows]


def _version(
    conn: psycopg.Connection[tuple[object, ...]], catalogue: str, version: str
) -> PublishedVersion:
    row = conn.execute(
        "SELECT catalogue, version, sha256, author, note, published_at FROM catalogue_versions "
        "WHERE catalogue = %s AND version = %s",
        (catalogue, version),
    ).fetchone()
    assert row is not None  # the insert conflicted on this key
    return _published(row)


def _published(row: tuple[object, ...]) -> PublishedVersion:
    catalogue, version, digest, author, note, published_at = row
    assert isinstance(published_at, dt.datetime)
    return PublishedVersion(
        str(catalogue), str(version), str(digest), str(author), str(note), _aware(published_at)
    )


def _aware(moment: object) -> dt.datetime:
    assert isinstance(moment, dt.datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
