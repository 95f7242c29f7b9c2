"""Readers that remember where every value came from (file and line).

Validation happens on plain Python data, so the readers keep a side record of line numbers:
YAML mappings and sequences are built as ``LineDict`` / ``LineList`` (a PyYAML SafeLoader
subclass fills in the lines from the composed nodes) and every CSV row becomes a ``LineDict``
whose keys all sit on the row's line. A pydantic error path (``loc``) is then walked through
that data to find the line of the offending key, which is what the operator needs.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import CatalogueError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class FieldError(ValueError):
    """A model validator's complaint about one named field (pydantic only knows the model)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


class LineDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LineList(list[Any]):
    """A sequence that knows its own line and the line of each item (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class _DuplicateKeyError(Exception):
    """PyYAML keeps the last of two equal keys silently; a catalogue must not."""

    def __init__(self, key: object, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line
        self.first_line = first_line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers."""


def _construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)  # resolve `<<` merge keys like SafeLoader does
    result = LineDict(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise _DuplicateKeyError(key, line, 0)
        if key in result:
            raise _DuplicateKeyError(key, line, result.key_lines[key])
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_seq(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(node.start_mark.line + 1)
    for child in node.value:
        result.append(loader.construct_object(child, deep=True))
        result.item_lines.append(child.start_mark.line + 1)
    return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: spreadsheet tools put a BOM before the header of the CSVs they save.
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogueError(path, None, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise CatalogueError(path, None, None, f"not UTF-8 text ({exc.reason})") from None


def read_yaml(path: Path) -> LineDict:
    """Parse a YAML catalogue whose top level is a mapping."""
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: no arbitrary objects
    except _DuplicateKeyError as exc:
        if exc.first_line == 0:
            raise CatalogueError(path, exc.line, None, "mapping keys must be scalars") from None
        reason = f"duplicate key (first defined at line {exc.first_line})"
        raise CatalogueError(path, exc.line, str(exc.key), reason) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CatalogueError(path, line, None, f"invalid YAML: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character (NUL...) YAML does not allow
        line = text[: exc.position].count("\n") + 1
        reason = f"invalid YAML: character #x{exc.character:04x} is not allowed"
        raise CatalogueError(path, line, None, reason) from None
    if not isinstance(data, LineDict):
        raise CatalogueError(path, 1, None, "the top level must be a mapping of keys")
    return data


def read_csv(path: Path, columns: Sequence[str], optional: Sequence[str] = ()) -> list[LineDict]:
    """Rows of a CSV catalogue as ``LineDict`` (header is line 1; empty cells become None).

    ``columns`` must all be in the header; ``optional`` may be; anything else is an error, so a
    typo in a header cannot silently drop a column.
    """
    lines = _read_text(path).splitlines()
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise CatalogueError(path, 1, None, f"empty file (expected header: {','.join(columns)})")
    _check_header(path, [name.strip() for name in header], columns, optional)
    return list(_rows(path, reader, [name.strip() for name in header]))


def _check_header(
    path: Path, header: list[str], columns: Sequence[str], optional: Sequence[str]
) -> None:
    known = [*columns, *optional]
    for name in header:
        if name not in known:
            raise CatalogueError(path, 1, name, f"unknown column (expected {', '.join(known)})")
        if header.count(name) > 1:
            raise CatalogueError(path, 1, name, "duplicate column")
    for name in columns:
        if name not in header:
            raise CatalogueError(path, 1, name, "missing column")


def _rows(path: Path, reader: Iterator[list[str]], header: list[str]) -> Iterator[LineDict]:
    # csv.reader.line_num counts physical lines read so far: the row just returned ends there.
    # A row starts one line after the previous row ended (quoted newlines span lines).
    line_num = getattr(reader, "line_num", 1)
    previous_end = line_num
    for cells in reader:
        start = previous_end + 1
        previous_end = getattr(reader, "line_num", start)
        if not any(cell.strip() for cell in cells):
            continue  # blank line: harmless, and editors add them
        if len(cells) != len(header):
            reason = f"expected {len(header)} cells, got {len(cells)}"
            raise CatalogueError(path, start, None, reason)
        row = LineDict(start)
        for name, cell in zip(header, cells, strict=True):
            row[name] = cell.strip() or None
            row.key_lines[name] = start
        yield row


@dataclass(frozen=True)
class Located(Generic[T]):
    """A validated record with the place it was read from, for cross-file checks."""

    value: T
    path: Path
    line: int
    key_lines: Mapping[Any, int]
    raw: LineDict | None = None  # the source mapping, to locate nested records

    def child(self, key: str) -> Located[T]:
        """The same record located at its nested mapping ``key`` (e.g. a level's ``rule``)."""
        nested = self.raw.get(key) if self.raw is not None else None
        if not isinstance(nested, LineDict):
            return self
        return Located(self.value, self.path, nested.line, nested.key_lines, nested)

    def error(self, field: str | None, reason: str) -> CatalogueError:
        line = self.key_lines.get(field, self.line) if field is not None else self.line
        return CatalogueError(self.path, line, field, reason)


def located(path: Path, values: Sequence[M], raw: object) -> list[Located[M]]:
    """Pair each validated record with the raw mapping it came from (same order)."""
    items = raw if isinstance(raw, LineList) else LineList(1)
    result: list[Located[M]] = []
    for index, value in enumerate(values):
        item = items[index] if index < len(items) else None
        if isinstance(item, LineDict):
            result.append(Located(value, path, item.line, item.key_lines, item))
        else:
            result.append(Located(value, path, items.line, {}))
    return result


def validate(model: type[M], path: Path, raw: LineDict) -> M:
    """Validate raw data into ``model``; the first problem becomes a one-line CatalogueError."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _translate(path, raw, exc.errors()[0]) from None


def _translate(path: Path, raw: LineDict, error: ErrorDetails) -> CatalogueError:
    loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc = (*loc, cause.field)
    line, field = _locate(raw, loc)
    return CatalogueError(path, line, field, _reason(error))


def _locate(raw: LineDict, loc: tuple[int | str, ...]) -> tuple[int, str | None]:
    """Walk ``loc`` through the raw data: the deepest line found and the last key name."""
    node: object = raw
    line, field = raw.line, None
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line, field, node = node.key_lines[part], str(part), node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            line, node = node.item_lines[part], node[part]
        else:
            # A missing key (or a pydantic-internal step): name it, keep the enclosing line.
            if isinstance(part, str) and not part.startswith(("function-", "json-")):
                field = part
            break
    return line, field


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return "unknown field (not allowed here)"
    if kind in {"value_error", "assertion_error"}:
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{error['msg']} (got {value!r})"
    return str(error["msg"])
