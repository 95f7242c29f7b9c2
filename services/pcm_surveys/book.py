"""The survey book in PostgreSQL: collections and responses, each call one transaction.

A collection is declared once (its event id and its collection id are both claimed: a resend is
a duplicate, a second declaration of the same collection is refused). A response is checked
against its collection under the collection's row lock (unknown collection, answered outside the
collection's period: refused with the reason); one beyond the number of people offered is stored
but flagged and counted. Published events carry no free text: the comment stays in the book.

Reads (``list_collections``, ``list_responses``) are keyset-paged, newest first; the comment is
read from the table only for the entity's own reading.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import psycopg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import survey_pb2, surveys_service_pb2
from pcm_common.kafka.envelope import wrap
from pcm_common.outbox import Connections
from pcm_common.push import Outcome, Refusal
from pcm_common.push.reading import decode_token, encode_token
from pcm_common.validation import INCONSISTENT, UNKNOWN_CODE, FieldError
from psycopg.rows import TupleRow

from pcm_surveys.metrics import BEYOND_OFFERED

COLLECTION_CHANNEL = "survey_collection_outbox"
RESPONSE_CHANNEL = "survey_response_outbox"
Conn = psycopg.Connection[TupleRow]
Row = tuple[Any, ...]
T = TypeVar("T")
_MODE = survey_pb2.SurveyMode
_LANGUAGE = survey_pb2.SurveyLanguage
_ANSWER = survey_pb2.AnswerStatus
_COLLECTION_COLUMNS = (
    "entity_id, collection_id, event_id, period_start, period_end, offered, service_id, "
    "channel, stage, interactions, responses, questionnaire_version, mode, language"
)
_RESPONSE_COLUMNS = (
    "entity_id, event_id, collection_id, response_id, answered_at, service_id, channel, "
    "scores, overall, beyond_offered"
)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str


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
                    f"INSERT INTO survey_collections ({_COLLECTION_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING event_id",
                    (
                        entity_id,
                        event.collection_id,
                        event_id,
                        _moment(event.period_start),
                        _moment(event.period_end),
                        event.offered,
                        event.service_id,
                        event.channel,
                        event.stage,
                        event.interactions,
                        event.responses,
                        event.questionnaire_version,
                        _MODE.Name(event.mode).removeprefix("SURVEY_MODE_"),
                        _LANGUAGE.Name(event.language).removeprefix("SURVEY_LANGUAGE_"),
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
            f"INSERT INTO survey_responses ({_RESPONSE_COLUMNS}, comment) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            (
                entity_id,
                event_id,
                event.collection_id,
                event.response_id,
                answered,
                event.service_id,
                event.channel,
                json.dumps([_answer(score) for score in event.scores]),
                json.dumps(_answer(event.overall)) if event.HasField("overall") else None,
                beyond,
                event.comment,
            ),
        ).fetchone()
        if inserted is None:
            if self._known_event(conn, "survey_responses", entity_id, event_id):
                return "duplicate"  # a concurrent resend of this event id won
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

    # --- reads ---------------------------------------------------------------------------

    def list_collections(
        self, entity_id: str, collection_id: str, page_size: int, page_token: str
    ) -> Page[survey_pb2.SurveyCollection]:
        """The entity's collections as declared, newest declaration first."""
        return self._page(
            f"SELECT {_COLLECTION_COLUMNS}, recorded_at FROM survey_collections",
            "collection_id",
            entity_id,
            collection_id,
            page_size,
            page_token,
            _collection,
        )

    def list_responses(
        self,
        entity_id: str,
        collection_id: str,
        with_comment: bool,
        page_size: int,
        page_token: str,
    ) -> Page[surveys_service_pb2.StoredSurveyResponse]:
        """The entity's stored responses, newest first; the free text only ``with_comment`` (the
        entity's own reading): otherwise it is not even read from the table."""
        comment = "comment" if with_comment else "''::text"
        return self._page(
            f"SELECT {_RESPONSE_COLUMNS}, {comment}, recorded_at FROM survey_responses",
            "event_id",
            entity_id,
            collection_id,
            page_size,
            page_token,
            _stored_response,
        )

    def _page(
        self,
        select: str,
        key: str,
        entity_id: str,
        collection_id: str,
        page_size: int,
        page_token: str,
        build: Callable[[Row], T],
    ) -> Page[T]:
        """One page in the order ``recorded_at DESC, <key> DESC`` (``key`` unique per entity);
        each row ends with ``recorded_at``, the key is its column of that name."""
        after = decode_token(page_token)
        conditions = ["entity_id = %s"]
        params: list[Any] = [entity_id]
        if collection_id:
            conditions.append("collection_id = %s")
            params.append(collection_id)
        if after is not None:
            conditions.append(f"(recorded_at, {key}) < (%s, %s)")
            params += list(after)
        with self._connections.connection() as conn:
            cursor = conn.execute(
                f"{select} WHERE {' AND '.join(conditions)} "
                f"ORDER BY recorded_at DESC, {key} DESC LIMIT %s",
                (*params, page_size + 1),
            )
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1][-1], rows[-1][names.index(key)]) if more else ""
        return Page([build(row[:-1]) for row in rows], token)


def _answer(score: survey_pb2.DriverScore) -> dict[str, Any]:
    status = _ANSWER.Name(score.status).removeprefix("ANSWER_STATUS_")
    return {"driver": score.driver, "score": score.score, "status": status}


def _score(stored: dict[str, Any]) -> survey_pb2.DriverScore:
    return survey_pb2.DriverScore(
        driver=stored["driver"],
        score=stored["score"],
        status=_ANSWER.Value(f"ANSWER_STATUS_{stored['status']}"),
    )


def _collection(row: Sequence[Any]) -> survey_pb2.SurveyCollection:
    (entity, collection_id, event_id, start, end, offered, service_id, channel, stage,
     interactions, responses, version, mode, language) = row  # fmt: skip
    out = survey_pb2.SurveyCollection(
        event_id=event_id,
        entity_id=entity,
        collection_id=collection_id,
        service_id=service_id,
        channel=channel,
        stage=stage,
        interactions=interactions,
        offered=offered,
        responses=responses,
        questionnaire_version=version,
        # '' in rows stored before migration 0002: unspecified.
        mode=_MODE.Value(f"SURVEY_MODE_{mode or 'UNSPECIFIED'}"),
        language=_LANGUAGE.Value(f"SURVEY_LANGUAGE_{language or 'UNSPECIFIED'}"),
    )
    out.period_start.FromDatetime(start)
    out.period_end.FromDatetime(end)
    return out


def _stored_response(row: Sequence[Any]) -> surveys_service_pb2.StoredSurveyResponse:
    (entity, event_id, collection_id, response_id, answered, service_id, channel, scores,
     overall, beyond, comment) = row  # fmt: skip
    response = survey_pb2.SurveyResponse(
        event_id=event_id,
        entity_id=entity,
        collection_id=collection_id,
        response_id=response_id,
        service_id=service_id,
        channel=channel,
        scores=[_score(score) for score in scores],
        comment=comment,
    )
    if overall is not None:
        response.overall.CopyFrom(_score(overall))
    response.answered_at.FromDatetime(answered)
    return surveys_service_pb2.StoredSurveyResponse(response=response, beyond_offered=beyond)
