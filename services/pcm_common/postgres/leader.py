"""One leader among a worker's replicas: a PostgreSQL session advisory lock held on a
connection of its own. The lock dies with that connection, so a leader that is killed or cut
off from PostgreSQL loses it within the server's idea of the session, and a standby takes over
at its next try; no lease to renew, no clock to trust."""

from __future__ import annotations

import hashlib

import psycopg
from psycopg.rows import TupleRow

from pcm_common.postgres.client import connect
from pcm_common.settings import Settings


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for a worker name (stable across versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, settings: Settings, name: str) -> None:
        self._settings = settings
        self._name = name
        self._key = lock_key(name)
        self.connection: psycopg.Connection[TupleRow] | None = None
        """The leader's own connection while it leads (LISTEN on it, prove it alive)."""

    def held(self) -> bool:
        """Whether this process leads: kept while its connection lives, else tried once."""
        if self.connection is not None and not self.connection.closed:
            return True
        conn = connect(self._settings, autocommit=True, application_name=self._name)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        self.connection = conn
        return True

    def alive(self) -> bool:
        """Whether the lock is still held (a round trip on its connection); dropped if not."""
        if self.connection is None or self.connection.closed:
            return False
        try:
            self.connection.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
