"""Turning CSV rows into protobuf messages by field name, for bulk imports of every domain.

Columns are the message's field names. Values: timestamps in ISO 8601 (naive ones are taken in
the platform's time zone, America/Lima), enums by their short name (``SERVED`` for
``ATTENTION_EVENT_KIND_TICKET_SERVED``), booleans as true/false/1/0/si/no.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from pcm_common.validation import INVALID_FORMAT, FieldError

M = TypeVar("M", bound=Message)
_TRUE = {"true", "1", "si", "sí", "yes", "y", "s"}
_FALSE = {"false", "0", "no", "n", ""}


def message_from_row(
    row: dict[str, str], message_type: type[M], zone: ZoneInfo
) -> tuple[M, list[FieldError]]:
    """Fill a message from a CSV row; unparsable cells become FieldErrors, not exceptions."""
    message = message_type()
    errors: list[FieldError] = []
    fields = message.DESCRIPTOR.fields_by_name
    for column, raw in row.items():
        value = (raw or "").strip()
        if column not in fields:
            continue  # extra export columns are ignored, not fatal
        if not value:
            continue
        try:
            _set(message, fields[column], value, zone)
        except ValueError as error:
            errors.append(FieldError(column, str(error), INVALID_FORMAT))
    return message, errors


def _set(message: Message, field: Any, value: str, zone: ZoneInfo) -> None:
    if (
        field.message_type is not None
        and field.message_type.full_name == "google.protobuf.Timestamp"
    ):
        getattr(message, field.name).FromDatetime(parse_time(value, zone))
    elif field.enum_type is not None:
        setattr(message, field.name, enum_number(field, value))
    elif field.type == FieldDescriptor.TYPE_BOOL:
        setattr(message, field.name, parse_bool(value))
    elif field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64):
        number = int(value)
        if number < 0:
            raise ValueError(f"must not be negative, got {number}")
        setattr(message, field.name, number)
    elif field.type == FieldDescriptor.TYPE_DOUBLE:
        setattr(message, field.name, float(value))
    else:
        setattr(message, field.name, value)


def parse_time(value: str, zone: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def enum_number(field: FieldDescriptor, value: str) -> int:
    """Accept the full enum name or any suffix after its prefix (SERVED, TICKET_SERVED)."""
    assert field.enum_type is not None
    wanted = value.upper()
    for candidate in field.enum_type.values:
        if candidate.number and (candidate.name == wanted or candidate.name.endswith("_" + wanted)):
            return int(candidate.number)
    names = [v.name for v in field.enum_type.values if v.number]
    raise ValueError(f"unknown value {value!r} (expected one of {', '.join(names)})")
