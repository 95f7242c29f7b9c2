"""Field checks shared by every push API: each returns the problems it found, never raises.

A problem names the field, a reason a person can act on and a machine-readable code
(``RejectionCode``); the push kit keeps every item that has none (one bad item never costs its
valid neighbours). Reasons quote at most ``QUOTE_LIMIT`` characters of the input: an answer never
echoes unbounded input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import TypeAlias

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import common_pb2

Code: TypeAlias = common_pb2.RejectionCode.ValueType
REQUIRED = common_pb2.REJECTION_CODE_REQUIRED
INVALID_FORMAT = common_pb2.REJECTION_CODE_INVALID_FORMAT
TOO_LONG = common_pb2.REJECTION_CODE_TOO_LONG
UNKNOWN_CODE = common_pb2.REJECTION_CODE_UNKNOWN_CODE
OUT_OF_RANGE = common_pb2.REJECTION_CODE_OUT_OF_RANGE
TIME_ORDER = common_pb2.REJECTION_CODE_TIME_ORDER
FOREIGN_ENTITY = common_pb2.REJECTION_CODE_FOREIGN_ENTITY
INCONSISTENT = common_pb2.REJECTION_CODE_INCONSISTENT
IN_PROGRESS = common_pb2.REJECTION_CODE_IN_PROGRESS
ILLEGAL_TRANSITION = common_pb2.REJECTION_CODE_ILLEGAL_TRANSITION

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$")
MAX_ID_LENGTH = 128
QUOTE_LIMIT = 40
MAX_REASON_LENGTH = 240

# Timestamps a platform store can hold: ClickHouse DateTime starts at 1970; protobuf's own
# Timestamp range ends with year 9999.
_EARLIEST_S = 0
_LATEST_S = 253_402_300_799
_NANOS_LIMIT = 1_000_000_000


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    code: Code

    def bounded(self) -> FieldError:
        """The same error, never longer than an answer may be."""
        if len(self.reason) <= MAX_REASON_LENGTH and len(self.field) <= MAX_ID_LENGTH:
            return self
        return replace(
            self, field=clip(self.field, MAX_ID_LENGTH), reason=clip(self.reason, MAX_REASON_LENGTH)
        )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(value: str) -> str:
    """repr() of a value from the input, cut to ``QUOTE_LIMIT`` characters."""
    return repr(clip(value, QUOTE_LIMIT))


@dataclass(frozen=True)
class TimeWindow:
    """Timestamps accepted: not later than now + skew, not older than the retention."""

    now_s: float
    future_skew_s: float
    max_age_s: float | None
    """None: any past time (e.g. when a procedure was filed, possibly years ago)."""

    def any_past(self) -> TimeWindow:
        return replace(self, max_age_s=None)

    def problem(self, seconds: float) -> str | None:
        if seconds > self.now_s + self.future_skew_s:
            return f"in the future beyond the {int(self.future_skew_s)} s clock-skew allowance"
        if self.max_age_s is not None and seconds < self.now_s - self.max_age_s:
            return f"older than {int(self.max_age_s // 86_400)} days"
        return None


def check_id(value: str, field: str) -> Iterable[FieldError]:
    if not value:
        yield FieldError(field, "required", REQUIRED)
    elif len(value) > MAX_ID_LENGTH:
        yield FieldError(field, f"longer than {MAX_ID_LENGTH} characters", TOO_LONG)
    elif not _ID_PATTERN.match(value):
        yield FieldError(
            field, "must be letters, digits and . _ : / # - (no spaces)", INVALID_FORMAT
        )


def check_optional_text(value: str, field: str, max_length: int = 64) -> Iterable[FieldError]:
    if len(value) > max_length:
        yield FieldError(field, f"longer than {max_length} characters", TOO_LONG)


def check_code(value: str, field: str, known: AbstractSet[str], what: str) -> Iterable[FieldError]:
    if not value:
        yield FieldError(field, "required", REQUIRED)
    elif value not in known:
        listed = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
        yield FieldError(
            field, f"unknown {what} {quoted(value)} (expected one of {listed})", UNKNOWN_CODE
        )


def nul_fields(message: Message) -> list[str]:
    """The string fields of ``message`` (nested and repeated ones too) holding a NUL character
    (U+0000), which no store keeps (PostgreSQL text refuses it): ``["comment",
    "actions[0].description"]``."""
    # A string with NUL puts a zero byte in the encoding; most messages have none (a batch of
    # 1,000 attentions is checked in under a millisecond).
    if b"\x00" not in message.SerializeToString():
        return []
    return _nul_paths(message, "")


def _nul_paths(message: Message, prefix: str) -> list[str]:
    found: list[str] = []
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            pairs = [(f"{name}[{key!r}]", key, item) for key, item in value.items()]
        elif field.is_repeated:
            pairs = [(f"{name}[{index}]", "", item) for index, item in enumerate(value)]
        else:
            pairs = [(name, "", value)]
        for path, key, item in pairs:
            if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                found.append(path)
            elif isinstance(item, Message):
                found += _nul_paths(item, f"{path}.")
    return found


def check_entity(entity_id: str, caller: str) -> Iterable[FieldError]:
    """The item's entity must be the credential's: the write half of ``auth.authorize``."""
    if not entity_id:
        yield FieldError("entity_id", "required", REQUIRED)
    elif entity_id != caller:
        yield FieldError(
            "entity_id",
            f"belongs to {quoted(entity_id)}; this credential is {caller!r}'s",
            FOREIGN_ENTITY,
        )


def seconds_of(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def timestamp_problem(stamp: Timestamp) -> str | None:
    """Why a Timestamp is not a valid instant (protobuf does not check on parse)."""
    if not 0 <= stamp.nanos < _NANOS_LIMIT:
        return f"nanos {stamp.nanos} outside 0..999,999,999"
    if not _EARLIEST_S <= stamp.seconds <= _LATEST_S:
        return f"seconds {stamp.seconds} outside 1970-01-01..9999-12-31"
    return None


def check_time(
    message: Message, field: str, window: TimeWindow, required: bool
) -> Iterable[FieldError]:
    if not message.HasField(field):
        if required:
            yield FieldError(field, "required", REQUIRED)
        return
    stamp: Timestamp = getattr(message, field)
    invalid = timestamp_problem(stamp)
    if invalid:
        yield FieldError(field, invalid, INVALID_FORMAT)
        return
    problem = window.problem(seconds_of(stamp))
    if problem:
        yield FieldError(field, problem, OUT_OF_RANGE)


def check_chronology(message: Message, fields: Sequence[str]) -> Iterable[FieldError]:
    """Each set timestamp must not precede the previous set one (a negative duration)."""
    previous_name, previous = "", 0.0
    for name in fields:
        if not message.HasField(name):
            continue
        current = seconds_of(getattr(message, name))
        if previous_name and current < previous:
            yield FieldError(name, f"before {previous_name} (negative duration)", TIME_ORDER)
        previous_name, previous = name, current
