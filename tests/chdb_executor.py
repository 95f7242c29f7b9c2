"""SqlExecutor over an embedded chdb session: a current ClickHouse engine, in-process.

Tests run the same migrations and KPI SQL here and on the Debian 18.16 server, which keeps every
statement portable across both ends of the versions the platform supports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chdb import session as chdb_session


class ChdbExecutor:
    def __init__(self, path: Path) -> None:
        self._session = chdb_session.Session(str(path))
        # JSON output quotes 64-bit integers by default; numbers should come back as numbers.
        self._session.query("SET output_format_json_quote_64bit_integers = 0")

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.query(sql)[1]]

    def query(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """The column types and rows of a statement (none for one that returns nothing)."""
        is_select = sql.lstrip().upper().startswith(("SELECT", "DESCRIBE", "SHOW"))
        result = self._session.query(sql, "JSONCompact" if is_select else "CSV")
        if not is_select:
            return [], []
        answer = json.loads(result.data())
        return [column["type"] for column in answer["meta"]], answer["data"]

    def close(self) -> None:
        self._session.close()
