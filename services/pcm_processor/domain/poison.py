"""A message no KPI can use, and why: it goes as-is to the dead-letter topic (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetter:
    """Where the message was read, its original key and bytes, and the reason it was refused.

    Reasons come from ``PoisonMessage``: transport-level (empty, undecodable,
    unknown_schema_version, wrong_payload, missing_entity) or semantic (unknown_service,
    unknown_channel, time_order, ...), plus mapping_error for a bug in a row mapper.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
