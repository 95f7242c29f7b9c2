"""The survey book in PostgreSQL: collections and responses, each call one transaction.

A collection is declared once (its event id and its collection id are both claimed: a resend is
a duplicate, a second declaration of the same collection is refused). A response is checked
against its collection under the collection's row lock (unknown collection, answered outside the
collection's period: refused with the reason); one beyond the number of people offered is stored
but flagged and counted. Published events carry no free text: the comment stays in the book.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import psycopg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import survey_pb2
from pcm_common.kafka.envelope import wrap
from pcm_common.outbox import Connections
from pcm_common.push import Outcome, Refusal
from pcm_common.validation import INCONSISTENT, UNKNOWN_CODE, FieldError
from psycopg.rows import TupleRow

from pcm_surveys.metrics import BEYOND_OFFERED

COLLECTION_CHANNEL = "survey_collection_outbox"
RESPONSE_CHANNEL = "survey_response_outbox"
Conn = psycopg.Connection[TupleRow]


def _moment(stamp: Timestamp) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp.seconds, dt.UTC)


def _publish(conn: Conn, table: str, entity_id: str, events: list[Message]) -> None:
    if not events:
        return
    received = Timestamp()
    received.GetCurrentTime()
    rows = [
        (entity_id, str(getattr(e, "event_id")), wrap(e, entity_id, received).SerializeToString())  # noqa: B009
        for e in events
    ]
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (entity_id, event_id, envelope) VALUES (%s, %s, %s)", rows
        )
    conn.execute(f"NOTIFY {table}")


class SurveyBook:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    def collections(self, entity_id: str, outcome: Outcome) -> None:
        items = [(i, e, cast(survey_pb2.SurveyCollection, c)) for i, e, c in outcome.accepted]
        stored: list[tuple[int, str, Message]] = []
        with self._connections.connection() as conn, conn.transaction():
            for index, event_id, event in items:
                if self._known_event(conn, "survey_collections", entity_id, event_id):
                    outcome.duplicates.append(index)
                    continue
                inserted = conn.execute(
                    "INSERT INTO survey_collections (entity_id, collection_id, event_id, "
                    "period_start, period_end, offered) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING event_id",
                    (
                        entity_id,
                        event.collection_id,
                        event_id,
                        _moment(event.period_start),
                        _moment(event.period_end),
                        event.offered,
                    ),
                ).fetchone()
                if inserted is None:
                    if self._known_event(conn, "survey_collections", entity_id, event_id):
                        outcome.duplicates.append(index)  # a concurrent resend won
                        continue
                    reason = "this collection is already declared (one declaration per run)"
                    error = FieldError("collection_id", reason, INCONSISTENT)
                    outcome.refusals.append(Refusal(index, event_id, error))
                    continue
                stored.append((index, event_id, event))
            _publish(conn, COLLECTION_CHANNEL, entity_id, [e for _, _, e in stored])
        outcome.accepted = stored

    def responses(self, entity_id: str, outcome: Outcome) -> None:
        items = [(i, e, cast(survey_pb2.SurveyResponse, r)) for i, e, r in outcome.accepted]
        stored: list[tuple[int, str, Message]] = []
        published: list[Message] = []
        with self._connections.connection() as conn, conn.transaction():
            for index, event_id, event in items:
                problem = self._response(conn, entity_id, event_id, event)
                if problem == "duplicate":
                    outcome.duplicates.append(index)
                elif isinstance(problem, FieldError):
                    outcome.refusals.append(Refusal(index, event_id, problem))
                else:
                    stored.append((index, event_id, event))
                    public = survey_pb2.SurveyResponse()
                    public.CopyFrom(event)
                    public.ClearField("comment")  # free text stays in the book
                    published.append(public)
            _publish(conn, RESPONSE_CHANNEL, entity_id, published)
        outcome.accepted = stored

    def _response(
        self, conn: Conn, entity_id: str, event_id: str, event: survey_pb2.SurveyResponse
    ) -> FieldError | str | None:
        if self._known_event(conn, "survey_responses", entity_id, event_id):
            return "duplicate"
        collection = conn.execute(
            "SELECT period_start, period_end, offered, responses_received FROM survey_collections "
            "WHERE entity_id = %s AND collection_id = %s FOR UPDATE",
            (entity_id, event.collection_id),
        ).fetchone()
        if collection is None:
            return FieldError(
                "collection_id", "no collection with this id declared by this entity", UNKNOWN_CODE
            )
        start, end, offered, received = collection
        answered = _moment(event.answered_at)
        if not start <= answered <= end:
            return FieldError(
                "answered_at",
                f"outside the collection's period ({start.date()} to {end.date()})",
                INCONSISTENT,
            )
        beyond = received + 1 > offered
        inserted = conn.execute(
            "INSERT INTO survey_responses (entity_id, event_id, collection_id, response_id, "
            "answered_at, comment, beyond_offered) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            (
                entity_id,
                event_id,
                event.collection_id,
                event.response_id,
                answered,
                event.comment,
                beyond,
            ),
        ).fetchone()
        if inserted is None:
            return FieldError(
                "response_id", "this response is already stored for the collection", INCONSISTENT
            )
        conn.execute(
            "UPDATE survey_collections SET responses_received = responses_received + 1 "
            "WHERE entity_id = %s AND collection_id = %s",
            (entity_id, event.collection_id),
        )
        if beyond:
            BEYOND_OFFERED.labels(entity=entity_id).inc()
        return None

    @staticmethod
    def _known_event(conn: Conn, table: str, entity_id: str, event_id: str) -> bool:
        found: Any = conn.execute(
            f"SELECT 1 FROM {table} WHERE entity_id = %s AND event_id = %s", (entity_id, event_id)
        ).fetchone()
        return found is not None

    def collection(self, entity_id: str, collection_id: str) -> tuple[Any, ...] | None:
        with self._connections.connection() as conn:
            found: tuple[Any, ...] | None = conn.execute(
                "SELECT collection_id, offered, responses_received, "
                "(SELECT count(*) FROM survey_responses r WHERE r.entity_id = c.entity_id "
                "AND r.collection_id = c.collection_id AND r.beyond_offered) "
                "FROM survey_collections c WHERE entity_id = %s AND collection_id = %s",
                (entity_id, collection_id),
            ).fetchone()
        return found
