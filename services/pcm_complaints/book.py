"""The complaint book in PostgreSQL: each push is one transaction that checks every event
against its complaint's current state, stores the new state and the accepted events, and puts
the events to publish in the outbox (the worker's relay sends them to Kafka).

Concurrency: a call first takes a transaction-scoped advisory lock per complaint it touches, in
one global order (sorted keys), so two replicas receiving events of the same complaint apply
them one call after the other and never deadlock; calls on different complaints do not wait.
A resent event id is found in ``complaint_transitions`` and answered "duplicate": stored once.
The call answers only after COMMIT; if the commit's answer is lost, the resend is a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import complaint_pb2, complaints_service_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.kafka.envelope import wrap
from pcm_common.logging import get_logger
from pcm_common.push import Outcome, Refusal
from pcm_common.validation import ILLEGAL_TRANSITION, FieldError
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from pcm_complaints import lifecycle
from pcm_complaints.lifecycle import Complaint, Term

log = get_logger(__name__)

OUTBOX_CHANNEL = "complaint_outbox"
"""NOTIFY channel: a commit with outbox rows wakes the relay at once."""
OVERDUE_EVENT_PREFIX = "pcm-overdue/"
"""Event id of the platform's overdue event of a complaint: ``pcm-overdue/<complaint_id>``
(stable, so a replayed job or relay can never make a second one)."""

_COLUMNS = (
    "entity_id, complaint_id, stage, filed_on, term_business_days, due_on, term_basis, channel, "
    "service_id, driver, category, answered_on, business_days_to_answer, overdue_on, transitions"
)
# Rows travel as one array per column and are unnested by the server: one statement per table
# and call, whatever the batch size (row-by-row inserts cost the service more than PostgreSQL).
_UPSERT = f"""
INSERT INTO complaints ({_COLUMNS})
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::date[], %b::smallint[],
    %b::date[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::date[],
    %b::integer[], %b::date[], %b::integer[])
ON CONFLICT (entity_id, complaint_id) DO UPDATE SET
    stage = EXCLUDED.stage, driver = EXCLUDED.driver, answered_on = EXCLUDED.answered_on,
    business_days_to_answer = EXCLUDED.business_days_to_answer,
    transitions = EXCLUDED.transitions, updated_at = now()
"""
# Claims event ids: a row inserted is this call's; one that exists (or that a concurrent call
# is inserting: the insert waits for that call's commit) is a duplicate. In id order, so that two
# calls claiming some of the same ids never deadlock.
_CLAIM = """
INSERT INTO complaint_transitions (entity_id, event_id, complaint_id, stage, occurred_at)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[])
    AS i(entity_id, event_id, complaint_id, stage, occurred_at)
ORDER BY event_id
ON CONFLICT DO NOTHING
RETURNING entity_id, event_id
"""
_OUTBOX = """
INSERT INTO complaint_outbox (entity_id, event_id, envelope)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])
"""


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the parameters of an unnest insert)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


Connections = ConnectionPool[psycopg.Connection[TupleRow]]


def lock_key(entity_id: str, complaint_id: str) -> int:
    """The advisory lock of one complaint (64 bits of a digest: the same in every replica)."""
    digest = hashlib.sha256(f"complaint:{entity_id}\x00{complaint_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _record(row: Sequence[Any]) -> Complaint:
    (entity, complaint, stage, filed_on, days, due_on, basis, channel, service, driver,
     category, answered_on, to_answer, overdue_on, transitions) = row  # fmt: skip
    return Complaint(
        entity, complaint, stage, filed_on, Term(days, due_on, basis), channel, service, driver,
        category, answered_on, to_answer, overdue_on, transitions,
    )  # fmt: skip


def _values(record: Complaint) -> tuple[Any, ...]:
    term = record.term
    return (
        record.entity_id, record.complaint_id, record.stage, record.filed_on,
        term.business_days, term.due_on, term.basis, record.channel, record.service_id,
        record.driver, record.category, record.answered_on, record.business_days_to_answer,
        record.overdue_on, record.transitions,
    )  # fmt: skip


@dataclass
class _Call:
    """What one push call's transaction writes."""

    records: dict[str, Complaint] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    """Complaint ids whose record an event changed."""
    outbox: list[tuple[str, str, bytes]] = field(default_factory=list)


class ComplaintBook:
    def __init__(self, connections: Connections, catalogues: Catalogues, time_zone: str) -> None:
        self._connections = connections
        self._catalogues = catalogues
        self._zone = ZoneInfo(time_zone)

    def local_date(self, stamp: Timestamp) -> dt.date:
        return dt.datetime.fromtimestamp(stamp.seconds, self._zone).date()

    # --- a push call ---------------------------------------------------------------------

    def record(self, entity_id: str, outcome: Outcome) -> None:
        """Apply ``outcome.accepted`` in order in one transaction; move duplicates and illegal
        transitions out of it and put a receipt per stored item in ``outcome.receipts``."""
        items = [
            (i, e, cast(complaint_pb2.ComplaintEvent, event)) for i, e, event in outcome.accepted
        ]
        complaint_ids = sorted({event.complaint_id for _, _, event in items})
        call = _Call()
        with self._connections.connection() as conn, conn.transaction():
            keys = sorted(lock_key(entity_id, c) for c in complaint_ids)
            conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))
            claimed = _claim(conn, [event for _, _, event in items])
            call.records = self._records(conn, entity_id, complaint_ids, lock=True)
            received_at = Timestamp()
            received_at.GetCurrentTime()
            stored: list[tuple[int, str, Message]] = []
            released = []
            for item in items:
                index, event_id, event = item
                if (entity_id, event_id) not in claimed:
                    outcome.duplicates.append(index)
                    continue
                refused = self._apply(call, entity_id, event, received_at)
                if refused is not None:
                    error = FieldError(refused.field, refused.reason, ILLEGAL_TRANSITION)
                    outcome.refusals.append(Refusal(index, event_id, error.bounded()))
                    released.append(event_id)
                    continue
                stored.append(item)
                outcome.receipts[index] = _receipt(index, call.records[event.complaint_id])
            if released:  # a refused event id is not taken: it may be sent again, corrected
                conn.execute(
                    "DELETE FROM complaint_transitions WHERE entity_id = %s AND event_id = ANY(%s)",
                    (entity_id, released),
                )
            self._write(conn, call)
        outcome.accepted = stored

    def _records(
        self,
        conn: psycopg.Connection[TupleRow],
        entity_id: str,
        complaint_ids: list[str],
        lock: bool = False,
    ) -> dict[str, Complaint]:
        """The records of these complaints; ``lock``: held until commit, so that the overdue
        job (which skips locked rows) cannot flag one between this read and its write."""
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM complaints WHERE entity_id = %s AND complaint_id = ANY(%s)"
            + (" FOR UPDATE" if lock else ""),
            (entity_id, complaint_ids),
        )
        return {row[1]: _record(row) for row in rows}

    def _apply(
        self,
        call: _Call,
        entity_id: str,
        event: complaint_pb2.ComplaintEvent,
        received_at: Timestamp,
    ) -> lifecycle.Refused | None:
        stage = lifecycle.stage_name(event.stage)
        current = call.records.get(event.complaint_id)
        refused = lifecycle.refusal(current, event.complaint_id, stage)
        if refused is not None:
            return refused
        record = current or self._opened(entity_id, event)
        refiled = current is not None and event.HasField("filed_at")
        if refiled and self.local_date(event.filed_at) != record.filed_on:
            return lifecycle.Refused(
                "filed_at",
                f"differs from the filing date registered ({record.filed_on.isoformat()})",
            )
        occurred_on = self.local_date(event.occurred_at)
        to_answer = 0
        if stage in lifecycle.ANSWERING:
            to_answer = self._catalogues.calendar.business_days_between(
                record.filed_on, occurred_on, self._catalogues.region_of(entity_id)
            )
        record = lifecycle.advanced(record, stage, occurred_on, max(to_answer, 0))
        if event.driver and not record.driver:
            record = _with_driver(record, event.driver)
        call.records[event.complaint_id] = record
        call.changed.add(event.complaint_id)
        envelope = wrap(published(event, record), entity_id, received_at)
        call.outbox.append((entity_id, event.event_id, envelope.SerializeToString()))
        return None

    def _opened(self, entity_id: str, event: complaint_pb2.ComplaintEvent) -> Complaint:
        filed_on = self.local_date(event.filed_at)
        # Validated before (ComplaintRules._term): an override the catalogue refuses never
        # reaches the book.
        due = self._catalogues.complaint_due(
            entity_id, event.category or None, filed_on, event.legal_term_business_days
        )
        term = Term(due.term_business_days, due.due_on, due.basis)
        return lifecycle.opened(
            entity_id,
            event.complaint_id,
            filed_on,
            term,
            channel=event.channel,
            service_id=event.service_id,
            driver=event.driver,
            category=event.category,
        )

    @staticmethod
    def _write(conn: psycopg.Connection[TupleRow], call: _Call) -> None:
        """The changed records and the outbox rows of the stored events."""
        if not call.outbox:
            return
        touched = sorted(call.changed)
        conn.execute(_UPSERT, _columns([_values(call.records[c]) for c in touched], 15))
        _publish(conn, call.outbox)

    # --- reads ---------------------------------------------------------------------------

    def get(self, entity_id: str, complaint_id: str) -> Complaint | None:
        with self._connections.connection() as conn:
            found = self._records(conn, entity_id, [complaint_id])
        return found.get(complaint_id)

    def counts(self) -> list[tuple[str, int, int]]:
        """Per entity with complaints: (entity, open, open and past due)."""
        with self._connections.connection() as conn:
            rows = conn.execute(
                "SELECT entity_id, count(*) FILTER (WHERE stage = 'REGISTERED'), "
                "count(*) FILTER (WHERE stage = 'REGISTERED' AND overdue_on IS NOT NULL) "
                "FROM complaints GROUP BY entity_id"
            ).fetchall()
        return [(entity, int(open_), int(overdue)) for entity, open_, overdue in rows]

    # --- the overdue job -----------------------------------------------------------------

    def mark_overdue(self, today: dt.date, limit: int = 10_000) -> list[Complaint]:
        """Flag open complaints whose due date is before ``today`` and put their OVERDUE event
        in the outbox, in one transaction: each complaint is flagged once (``overdue_on`` set),
        whichever replica runs the job and however often."""
        received_at = Timestamp()
        received_at.GetCurrentTime()
        with self._connections.connection() as conn, conn.transaction():
            rows = conn.execute(
                f"""
                UPDATE complaints SET overdue_on = %(today)s, updated_at = now()
                WHERE (entity_id, complaint_id) IN (
                    SELECT entity_id, complaint_id FROM complaints
                    WHERE stage = 'REGISTERED' AND overdue_on IS NULL AND due_on < %(today)s
                    ORDER BY due_on LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                RETURNING {_COLUMNS}
                """,
                {"today": today, "limit": limit},
            ).fetchall()
            records = [_record(row) for row in rows]
            events = [overdue_event(record, received_at) for record in records]
            claimed = _claim(conn, events)
            outbox = [
                (e.entity_id, e.event_id, wrap(e, e.entity_id, received_at).SerializeToString())
                for e in events
                if (e.entity_id, e.event_id) in claimed
            ]
            if outbox:
                _publish(conn, outbox)
        return records


def _claim(
    conn: psycopg.Connection[TupleRow], events: Sequence[complaint_pb2.ComplaintEvent]
) -> set[tuple[str, str]]:
    """The (entity, event id) of the events this transaction is first to store; the others
    are duplicates."""
    rows = [
        (
            event.entity_id,
            event.event_id,
            event.complaint_id,
            lifecycle.stage_name(event.stage),
            dt.datetime.fromtimestamp(event.occurred_at.seconds, dt.UTC),
        )
        for event in events
    ]
    return {(entity, event_id) for entity, event_id in conn.execute(_CLAIM, _columns(rows, 5))}


def _publish(conn: psycopg.Connection[TupleRow], outbox: Sequence[tuple[str, str, bytes]]) -> None:
    """Outbox rows; NOTIFY wakes the relay at commit."""
    conn.execute(_OUTBOX, _columns(outbox, 3))
    conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")


def _with_driver(record: Complaint, driver: str) -> Complaint:
    return replace(record, driver=driver)


def published(
    event: complaint_pb2.ComplaintEvent, record: Complaint
) -> complaint_pb2.ComplaintEvent:
    """The event as the platform publishes it: the entity's fields, the record's attributes
    where the event left them out, and the platform's term fields."""
    out = complaint_pb2.ComplaintEvent()
    out.CopyFrom(event)
    out.channel = out.channel or record.channel
    out.service_id = out.service_id or record.service_id
    out.driver = out.driver or record.driver
    out.category = out.category or record.category
    if not out.HasField("filed_at"):
        filed = dt.datetime.combine(record.filed_on, dt.time(12), dt.UTC)
        out.filed_at.FromDatetime(filed)
    out.due_on = record.term.due_on.isoformat()
    out.term_business_days = record.term.business_days
    out.term_basis = record.term.basis
    out.overdue = record.overdue
    return out


def overdue_event(record: Complaint, now: Timestamp) -> complaint_pb2.ComplaintEvent:
    event = complaint_pb2.ComplaintEvent(
        event_id=OVERDUE_EVENT_PREFIX + record.complaint_id,
        entity_id=record.entity_id,
        complaint_id=record.complaint_id,
        stage=lifecycle.stage_number(lifecycle.OVERDUE),
    )
    event.occurred_at.CopyFrom(now)
    return published(event, record)


def _receipt(index: int, record: Complaint) -> complaints_service_pb2.ComplaintReceipt:
    return complaints_service_pb2.ComplaintReceipt(
        index=index,
        complaint_id=record.complaint_id,
        stage=lifecycle.stage_number(record.stage),
        due_on=record.term.due_on.isoformat(),
        term_business_days=record.term.business_days,
    )


def receipts(outcome: Outcome) -> Iterable[complaints_service_pb2.ComplaintReceipt]:
    return (outcome.receipts[index] for index in sorted(outcome.receipts))
