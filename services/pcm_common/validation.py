"""Field checks shared by every push API: each returns the problems it found, never raises.

A problem names the field and the reason so the caller can fix its export; the batch logic
keeps every item that has none (one bad item never costs its valid neighbours).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$")
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


@dataclass(frozen=True)
class TimeWindow:
    """Timestamps accepted: not later than now + skew, not older than the retention."""

    now_s: float
    future_skew_s: float
    max_age_s: float

    def problem(self, seconds: float) -> str | None:
        if seconds > self.now_s + self.future_skew_s:
            return f"in the future beyond the {int(self.future_skew_s)} s clock-skew allowance"
        if seconds < self.now_s - self.max_age_s:
            return f"older than {int(self.max_age_s // 86_400)} days"
        return None


def check_id(value: str, field: str) -> Iterable[FieldError]:
    if not value:
        yield FieldError(field, "required")
    elif len(value) > MAX_ID_LENGTH:
        yield FieldError(field, f"longer than {MAX_ID_LENGTH} characters")
    elif not _ID_PATTERN.match(value):
        yield FieldError(field, "must be letters, digits and . _ : / # - (no spaces)")


def check_optional_text(value: str, field: str, max_length: int = 64) -> Iterable[FieldError]:
    if len(value) > max_length:
        yield FieldError(field, f"longer than {max_length} characters")


def check_code(value: str, field: str, known: AbstractSet[str], what: str) -> Iterable[FieldError]:
    if not value:
        yield FieldError(field, "required")
    elif value not in known:
        listed = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
        yield FieldError(field, f"unknown {what} {value!r} (expected one of {listed})")


def seconds_of(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def check_time(
    message: Message, field: str, window: TimeWindow, required: bool
) -> Iterable[FieldError]:
    if not message.HasField(field):
        if required:
            yield FieldError(field, "required")
        return
    problem = window.problem(seconds_of(getattr(message, field)))
    if problem:
        yield FieldError(field, problem)


def check_chronology(message: Message, fields: Sequence[str]) -> Iterable[FieldError]:
    """Each set timestamp must not precede the previous set one (a negative duration)."""
    previous_name, previous = "", 0.0
    for name in fields:
        if not message.HasField(name):
            continue
        current = seconds_of(getattr(message, name))
        if previous_name and current < previous:
            yield FieldError(name, f"before {previous_name} (negative duration)")
        previous_name, previous = name, current
