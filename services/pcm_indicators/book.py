"""The indicator book in PostgreSQL: each report call is one transaction that claims the event
ids (a resend is a duplicate), supersedes the current value of the same indicator and period (a
correction: both stay in the history), stores the new one and puts it in the outbox. A review
changes a value's status and publishes it again, in one transaction too.

Two calls reporting the same indicator and period at once are serialized by an advisory lock on
(entity, indicator, grain, period), taken in sorted order (no deadlock).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import common_pb2, indicator_pb2
from pcm_common.kafka.envelope import wrap
from pcm_common.logging import get_logger
from pcm_common.outbox import Connections
from pcm_common.push import Outcome
from pcm_common.push.reading import decode_token, encode_token
from psycopg.rows import TupleRow

from pcm_indicators.validation import GRAINS

log = get_logger(__name__)

OUTBOX_CHANNEL = "indicator_outbox"
REVIEW_EVENT_PREFIX = "pcm-review/"
"""Event id of a review's publication: ``pcm-review/<status>/<event_id>`` (stable)."""
_STATUS = indicator_pb2.IndicatorStatus
_COLUMNS = (
    "entity_id, event_id, indicator_code, grain, period_start, value, unit, evidence, "
    "reported_at, status, review_reason"
)
# A new report is inserted as its own successor (so it is not "current" yet and the index of
# current values does not refuse it): the claim of its event id comes first, and only a claimed
# report then supersedes the current value and becomes current.
_CLAIM = """
INSERT INTO indicator_reports (entity_id, event_id, indicator_code, grain, period_start, value,
    unit, evidence, reported_at, status, superseded_by)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (entity_id, event_id) DO NOTHING
RETURNING event_id
"""
_OUTBOX = """
INSERT INTO indicator_outbox (entity_id, event_id, envelope)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])
"""
Row = tuple[Any, ...]


def _lock_key(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(("indicator", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


@dataclass(frozen=True)
class Page:
    values: list[indicator_pb2.IndicatorValue]
    next_token: str


class ReviewError(Exception):
    """A review that cannot be applied: an unknown value (NOT_FOUND) or a superseded one
    (FAILED_PRECONDITION)."""

    def __init__(self, not_found: bool, message: str) -> None:
        super().__init__(message)
        self.not_found = not_found


class IndicatorBook:
    def __init__(self, connections: Connections, time_zone: str) -> None:
        self._connections = connections
        self._zone = ZoneInfo(time_zone)

    def _local_date(self, stamp: Timestamp) -> dt.date:
        return dt.datetime.fromtimestamp(stamp.seconds, self._zone).date()

    # --- reports -------------------------------------------------------------------------

    def report(self, entity_id: str, outcome: Outcome) -> None:
        items = [
            (i, e, cast(indicator_pb2.IndicatorValue, event)) for i, e, event in outcome.accepted
        ]
        rows = [self._row(entity_id, event) for _, _, event in items]
        keys = sorted({_lock_key(entity_id, r[2], r[3], r[4].isoformat()) for r in rows})
        with self._connections.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))
            claimed = self._claim(conn, rows)
            stored: list[tuple[int, str, Message]] = []
            outbox = []
            for index, event_id, event in items:
                if event_id not in claimed:
                    outcome.duplicates.append(index)
                    continue
                stored.append((index, event_id, event))
                outbox.append(
                    self._envelope(entity_id, event, _STATUS.INDICATOR_STATUS_REPORTED, "")
                )
            if outbox:
                conn.execute(_OUTBOX, _columns(outbox, 3))
                conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
        outcome.accepted = stored

    def _row(self, entity_id: str, event: indicator_pb2.IndicatorValue) -> Row:
        evidence = [{"url": e.url, "sha256": e.sha256} for e in event.evidence]
        return (
            entity_id,
            event.event_id,
            event.indicator_code,
            GRAINS[event.grain],
            self._local_date(event.period_start),
            event.value,
            event.unit,
            json.dumps(evidence),
            dt.datetime.fromtimestamp(event.reported_at.seconds, dt.UTC),
            "REPORTED",
        )

    @staticmethod
    def _claim(conn: psycopg.Connection[TupleRow], rows: list[Row]) -> set[str]:
        """Insert the new reports in order, each then superseding the current value of its
        period (several reports of one period in one call: the last one is current)."""
        claimed: set[str] = set()
        for row in rows:  # few per call (an entity's reports of a period)
            entity, event_id, code, grain, start = row[:5]
            if not conn.execute(_CLAIM, (*row, event_id)).fetchall():
                continue  # stored by an earlier call (or one committing now): a duplicate
            conn.execute(
                "UPDATE indicator_reports SET superseded_by = %s, status = 'SUPERSEDED' "
                "WHERE entity_id = %s AND indicator_code = %s AND grain = %s "
                "AND period_start = %s AND superseded_by IS NULL",
                (event_id, entity, code, grain, start),
            )
            conn.execute(
                "UPDATE indicator_reports SET superseded_by = NULL "
                "WHERE entity_id = %s AND event_id = %s",
                (entity, event_id),
            )
            claimed.add(event_id)
        return claimed

    def _envelope(
        self,
        entity_id: str,
        event: indicator_pb2.IndicatorValue,
        status: indicator_pb2.IndicatorStatus.ValueType,
        reason: str,
        event_id: str | None = None,
    ) -> tuple[str, str, bytes]:
        out = indicator_pb2.IndicatorValue()
        out.CopyFrom(event)
        out.status = status
        out.review_reason = reason
        out.ClearField("valid_until")  # answered on reads, never published
        out.ClearField("still_valid")
        if event_id is not None:
            out.event_id = event_id
        received = Timestamp()
        received.GetCurrentTime()
        return entity_id, out.event_id, wrap(out, entity_id, received).SerializeToString()

    # --- review --------------------------------------------------------------------------

    def review(
        self,
        entity_id: str,
        event_id: str,
        verdict: indicator_pb2.IndicatorStatus.ValueType,
        reason: str,
    ) -> indicator_pb2.IndicatorValue:
        status = _STATUS.Name(verdict).removeprefix("INDICATOR_STATUS_")
        with self._connections.connection() as conn, conn.transaction():
            row = conn.execute(
                f"SELECT {_COLUMNS}, superseded_by FROM indicator_reports "
                "WHERE entity_id = %s AND event_id = %s FOR UPDATE",
                (entity_id, event_id),
            ).fetchone()
            if row is None:
                raise ReviewError(True, f"event_id: no value {event_id!r} reported by {entity_id}")
            if row[-1] is not None:
                raise ReviewError(
                    False, f"event_id: superseded by {row[-1]!r}: review the current value"
                )
            conn.execute(
                "UPDATE indicator_reports SET status = %s, review_reason = %s, reviewed_at = now() "
                "WHERE entity_id = %s AND event_id = %s",
                (status, reason, entity_id, event_id),
            )
            value = _value(row[:-1], self._zone)
            value.status, value.review_reason = verdict, reason
            review_id = f"{REVIEW_EVENT_PREFIX}{status.lower()}/{event_id}"
            conn.execute(
                _OUTBOX, _columns([self._envelope(entity_id, value, verdict, reason, review_id)], 3)
            )
            conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
        return value

    # --- reads ---------------------------------------------------------------------------

    def list(
        self,
        entity_id: str,
        indicator_code: str,
        include_history: bool,
        page_size: int,
        page_token: str,
    ) -> Page:
        after = decode_token(page_token)
        conditions = ["entity_id = %s"]
        params: list[Any] = [entity_id]
        if indicator_code:
            conditions.append("indicator_code = %s")
            params.append(indicator_code)
        if not include_history:
            conditions.append("superseded_by IS NULL")
        if after is not None:
            conditions.append("(recorded_at, event_id) < (%s, %s)")
            params += list(after)
        with self._connections.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, recorded_at FROM indicator_reports "
                f"WHERE {' AND '.join(conditions)} ORDER BY recorded_at DESC, event_id DESC "
                "LIMIT %s",
                (*params, page_size + 1),
            ).fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1][-1], rows[-1][1]) if more else ""
        return Page([_value(row[:-1], self._zone) for row in rows], token)


def _value(row: Sequence[Any], zone: ZoneInfo) -> indicator_pb2.IndicatorValue:
    (entity, event_id, code, grain, start, value, unit, evidence, reported, status,
     reason) = row  # fmt: skip
    out = indicator_pb2.IndicatorValue(
        event_id=event_id,
        entity_id=entity,
        indicator_code=code,
        grain=common_pb2.Grain.Value(f"GRAIN_{grain}"),
        value=value,
        unit=unit,
        status=_STATUS.Value(f"INDICATOR_STATUS_{status}"),
        review_reason=reason,
        evidence=[indicator_pb2.Evidence(url=e["url"], sha256=e["sha256"]) for e in evidence],
    )
    # The local midnight the period starts at, as reported (not midnight UTC: a day earlier
    # in Lima).
    out.period_start.FromDatetime(dt.datetime.combine(start, dt.time(), zone))
    out.reported_at.FromDatetime(reported)
    return out
