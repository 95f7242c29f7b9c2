"""The tables a page shows, each also downloadable as CSV with the same rows: a cell has its
plain value (the CSV's) and what the page shows (Spanish text, a link, a level badge)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

Value = str | int | float | None


@dataclass(frozen=True)
class Cell:
    value: Value
    """What the CSV holds (codes and plain numbers)."""
    text: str
    """What the page shows."""
    href: str | None = None
    badge: str | None = None
    """A level or outcome code: shown as a labelled badge (text, never colour alone)."""
    numeric: bool = False


@dataclass(frozen=True)
class Table:
    key: str
    """Its name in the CSV download (``?descargar=<key>``) and the file name."""
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    csv_headers: tuple[str, ...] = ()
    """Column names of the CSV (default: the headers)."""
    empty: str = "Sin datos para este periodo."
    note: str = ""
    row_headers: bool = True
    """The first column names its row (``<th scope="row">``)."""
    href: str = field(default="", compare=False)
    """The CSV download link, set when the page is rendered."""


def text(value: str | None, shown: str | None = None, href: str | None = None) -> Cell:
    return Cell(value, (value or "") if shown is None else shown, href)


def badge(code: str, shown: str) -> Cell:
    return Cell(code, shown, badge=code.lower())


def number(value: float | int | None, shown: str) -> Cell:
    return Cell(value, shown, numeric=True)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Value) -> Value:
    # A spreadsheet runs a cell starting like a formula: text cells never start so.
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    if isinstance(value, float):
        return round(value, 4)
    return value


def to_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark (Excel reads the accents), comma-separated, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.csv_headers or table.headers)
    for row in table.rows:
        writer.writerow(["" if c.value is None else _csv_value(c.value) for c in row])
    return ("\ufeff" + out.getvalue()).encode()


def find(tables: Sequence[Table], key: str) -> Table | None:
    return next((t for t in tables if t.key == key), None)
