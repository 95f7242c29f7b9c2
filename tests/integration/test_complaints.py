"""The complaints service on the real stack: gRPC in-process, PostgreSQL, Kafka.

Each test goes through the public API (PushComplaintEvents, GetComplaint) and checks what the
book holds in PostgreSQL and what the relay published on Kafka."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from pcm.monitoring.v1 import (
    complaint_pb2,
    complaints_service_pb2,
    complaints_service_pb2_grpc,
)
from pcm_common.auth import Role, TokenStore
from pcm_common.grpc_server import error_reason
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect
from pcm_common.settings import Settings
from pcm_common.startup import ensure_topics
from pcm_complaints.server import create_server, worker
from pcm_complaints.settings import ComplaintsSettings
from pcm_testkit.events import ago, complaint, unique
from pcm_testkit.kafka import read_envelopes

ENTITY = "SUNARP"


@dataclass
class Complaints:
    settings: ComplaintsSettings
    stub: complaints_service_pb2_grpc.ComplaintsServiceStub
    tokens: dict[str, str]

    def push(
        self, events: list[complaint_pb2.ComplaintEvent], token: str = ENTITY
    ) -> complaints_service_pb2.PushComplaintEventsResponse:
        return self.stub.PushComplaintEvents(
            complaints_service_pb2.PushComplaintEventsRequest(events=events),
            metadata=(("authorization", f"Bearer {self.tokens[token]}"),),
            timeout=30,
        )

    def get(
        self, complaint_id: str, entity: str = ENTITY, token: str = ENTITY
    ) -> complaints_service_pb2.ComplaintStatus:
        return self.stub.GetComplaint(
            complaints_service_pb2.GetComplaintRequest(entity_id=entity, complaint_id=complaint_id),
            metadata=(("authorization", f"Bearer {self.tokens[token]}"),),
            timeout=30,
        ).complaint

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.settings) as conn:
            return conn.execute(query, params).fetchall()


def complaints_settings(isolated: Settings, token_file: Path, **extra: Any) -> ComplaintsSettings:
    return ComplaintsSettings(
        topic_prefix=isolated.topic_prefix,
        clickhouse_database=isolated.clickhouse_database,
        postgres_database=isolated.postgres_database,
        token_file=token_file,
        complaints_address="127.0.0.1:0",
        complaints_metrics_port=0,
        **extra,
    )


@pytest.fixture(scope="module")
def service(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Complaints]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    store = TokenStore(token_file)
    tokens = {
        ENTITY: store.issue(ENTITY),
        "ESSALUD": store.issue("ESSALUD"),
        "national": store.issue("PCM-SGP", Role.NATIONAL),
    }
    settings = complaints_settings(isolated_settings, token_file)
    ensure_topics(settings)
    server, port, kit = create_server(settings)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Complaints(
            settings, complaints_service_pb2_grpc.ComplaintsServiceStub(channel), tokens
        )
    finally:
        channel.close()
        server.stop(grace=None)
        kit.close()


def stage(name: str, complaint_id: str, entity: str = ENTITY, **fields: Any) -> Any:
    """A later lifecycle event of a complaint (no filing fields)."""
    event = complaint(entity, complaint_id=complaint_id, stage=name, occurred_at=ago(60), **fields)
    event.ClearField("filed_at")
    return event


def published(settings: ComplaintsSettings, minimum: int) -> list[complaint_pb2.ComplaintEvent]:
    topic = topic_for_domain("complaint").name(settings.topic_prefix)
    return [
        envelope.complaint
        for _, envelope in read_envelopes(settings.kafka_bootstrap, topic, minimum)
    ]


def relay_all(settings: ComplaintsSettings, today: dt.date | None = None) -> None:
    """One pass of the worker: publish the outbox (and run the overdue job as of ``today``)."""
    worker(settings, today=today).work_once()


def test_full_lifecycle_is_stored_answered_with_due_date_and_published(service: Complaints) -> None:
    filed = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)  # Mon 30 Nov 2026, 10:00 in Lima
    registered = complaint(ENTITY, filed_at=filed, occurred_at=filed)
    code = registered.complaint_id
    events = [
        registered,
        stage("ANSWERED", code),
        stage("NOTIFIED", code),
        stage("FOLLOW_UP", code),
        stage("CLOSED", code),
        stage("ARCHIVED", code),
    ]
    answer = service.push(events)
    assert answer.result.accepted == 6, answer.result
    assert [r.index for r in answer.receipts] == list(range(6))
    assert {r.due_on for r in answer.receipts} == {"2027-01-15"}  # 30 business days
    assert answer.receipts[-1].stage == complaint_pb2.COMPLAINT_STAGE_ARCHIVED
    status = service.get(code)
    assert status.stage == complaint_pb2.COMPLAINT_STAGE_ARCHIVED
    assert (status.filed_on, status.due_on, status.term_business_days) == (
        "2026-11-30",
        "2027-01-15",
        30,
    )
    assert status.answered_on and status.business_days_to_answer > 0
    assert status.transitions == 6 and not status.overdue
    assert service.sql(
        "SELECT count(*) FROM complaint_transitions WHERE complaint_id = %s", code
    ) == [(6,)]
    relay_all(service.settings)
    mine = [e for e in published(service.settings, 6) if e.complaint_id == code]
    assert [e.event_id for e in mine] == [e.event_id for e in events]
    assert {e.due_on for e in mine} == {"2027-01-15"}
    assert {e.term_business_days for e in mine} == {30}
    assert service.sql("SELECT count(*) FROM complaint_outbox WHERE published_at IS NULL") == [(0,)]


def test_illegal_transitions_are_refused_with_reasons_and_neighbours_stored(
    service: Complaints,
) -> None:
    first = complaint(ENTITY)
    second = complaint(ENTITY)
    archived = complaint(ENTITY)
    a, b, c = first.complaint_id, second.complaint_id, archived.complaint_id
    setup = service.push(
        [archived, stage("WITHDRAWN", c), stage("ARCHIVED", c), second, stage("ANSWERED", b)]
    )
    assert setup.result.accepted == 5, setup.result
    batch = [
        stage("ANSWERED", unique("NOPE", 10)),  # 0: never registered
        first,  # 1: valid
        stage("NOTIFIED", a),  # 2: notify before answering
        stage("ANSWERED", a),  # 3: valid
        stage("ANSWERED", b),  # 4: answered twice
        stage("ANSWERED", c),  # 5: after the archive
        stage("NOTIFIED", b),  # 6: valid
        complaint(ENTITY, complaint_id=b),  # 7: registered twice
    ]
    answer = service.push(batch)
    assert answer.result.accepted == 3
    refused = {r.index: r for r in answer.result.rejections}
    assert sorted(refused) == [0, 2, 4, 5, 7]
    assert all(r.code == 10 for r in refused.values())  # REJECTION_CODE_ILLEGAL_TRANSITION
    assert refused[0].field == "complaint_id" and "register it first" in refused[0].reason
    assert refused[2].field == "stage" and "needs an answer first" in refused[2].reason
    assert "already answered" in refused[4].reason
    assert "archived" in refused[5].reason
    assert "already registered" in refused[7].reason
    assert [r.index for r in answer.receipts] == [1, 3, 6]
    assert service.get(a).stage == complaint_pb2.COMPLAINT_STAGE_ANSWERED
    assert service.get(b).stage == complaint_pb2.COMPLAINT_STAGE_NOTIFIED
    assert service.get(c).stage == complaint_pb2.COMPLAINT_STAGE_ARCHIVED


def test_resend_is_a_duplicate_and_stored_once(service: Complaints) -> None:
    registered = complaint(ENTITY)
    answered = stage("ANSWERED", registered.complaint_id)
    assert service.push([registered, answered]).result.accepted == 2
    again = service.push([registered, answered])
    assert again.result.accepted == 0
    assert list(again.result.duplicate_indexes) == [0, 1]
    assert service.sql(
        "SELECT count(*) FROM complaint_outbox WHERE event_id = ANY(%s)",
        [registered.event_id, answered.event_id],
    ) == [(2,)]
    assert service.get(registered.complaint_id).transitions == 2


def test_foreign_entity_is_refused_on_write_and_read(service: Complaints) -> None:
    theirs = complaint("ESSALUD")
    assert service.push([theirs], token="ESSALUD").result.accepted == 1
    with pytest.raises(grpc.RpcError) as write:
        service.push([stage("ANSWERED", theirs.complaint_id, entity="ESSALUD")])
    assert write.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(write.value) == "ERROR_REASON_FOREIGN_ENTITY"
    with pytest.raises(grpc.RpcError) as read:
        service.get(theirs.complaint_id, entity="ESSALUD")
    assert read.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert service.get(theirs.complaint_id, entity="ESSALUD", token="national").transitions == 1
    assert service.get(theirs.complaint_id, entity="ESSALUD", token="ESSALUD").stage == (
        complaint_pb2.COMPLAINT_STAGE_REGISTERED
    )
    with pytest.raises(grpc.RpcError) as national_write:
        service.push([complaint("ESSALUD")], token="national")
    assert national_write.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_term_override_only_where_the_catalogue_allows_it(service: Complaints) -> None:
    longer = complaint(ENTITY, legal_term_business_days=10)
    health = complaint("ESSALUD", category="SALUD", legal_term_business_days=15)
    assert service.push([longer]).result.rejections[0].field == "legal_term_business_days"
    answer = service.push([health], token="ESSALUD")
    assert answer.result.accepted == 1 and answer.receipts[0].term_business_days == 15


def test_personal_data_is_refused_and_never_published(service: Complaints) -> None:
    dni = complaint(ENTITY, complainant_hash="45678912")
    answer = service.push([dni])
    assert [(r.field, r.code) for r in answer.result.rejections] == [("complainant_hash", 2)]
    assert "45678912" not in str(answer)
    assert service.sql(
        "SELECT count(*) FROM complaints WHERE complaint_id = %s", dni.complaint_id
    ) == [(0,)]


def test_overdue_is_marked_and_published_once(service: Complaints) -> None:
    filed = dt.datetime(2026, 10, 1, 15, 0, tzinfo=dt.UTC)
    late = complaint(ENTITY, filed_at=filed, occurred_at=ago(60))
    on_time = complaint(ENTITY, filed_at=filed, occurred_at=ago(60))
    answer = service.push([late, on_time, stage("ANSWERED", on_time.complaint_id)])
    assert answer.result.accepted == 3, answer.result
    due = dt.date.fromisoformat(answer.receipts[0].due_on)
    relay_all(service.settings, today=due)
    assert not service.get(late.complaint_id).overdue  # due today: not late yet
    relay_all(service.settings, today=due + dt.timedelta(days=1))
    relay_all(service.settings, today=due + dt.timedelta(days=1))  # as another replica would
    assert service.get(late.complaint_id).overdue
    assert not service.get(on_time.complaint_id).overdue
    rows = service.sql(
        "SELECT event_id FROM complaint_outbox WHERE entity_id = %s AND event_id LIKE %s",
        ENTITY,
        f"pcm-overdue/%{late.complaint_id}",
    )
    assert rows == [(f"pcm-overdue/{late.complaint_id}",)]
    overdue = [
        e
        for e in published(service.settings, 1)
        if e.stage == complaint_pb2.COMPLAINT_STAGE_OVERDUE
    ]
    assert [e.complaint_id for e in overdue if e.complaint_id == late.complaint_id] == [
        late.complaint_id
    ]
    assert overdue[0].overdue and overdue[0].due_on == due.isoformat()
    # A late answer is accepted and the complaint stays counted as having been overdue.
    assert service.push([stage("ANSWERED", late.complaint_id)]).result.accepted == 1
    assert service.get(late.complaint_id).overdue


def test_two_replicas_racing_on_one_complaint_serialize(
    service: Complaints, isolated_settings: Settings, tmp_path: Path
) -> None:
    other_server, port, kit = create_server(service.settings)
    other_server.start()
    other = Complaints(
        service.settings,
        complaints_service_pb2_grpc.ComplaintsServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}")
        ),
        service.tokens,
    )
    try:
        registered = [complaint(ENTITY) for _ in range(20)]
        assert service.push(registered).result.accepted == 20
        answers: dict[str, list[int]] = {"one": [], "two": []}
        start = threading.Barrier(2)

        def answer_all(name: str, replica: Complaints) -> None:
            start.wait()
            events = [stage("ANSWERED", r.complaint_id) for r in registered]
            answers[name] = [len(replica.push([event]).receipts) for event in events]

        threads = [
            threading.Thread(target=answer_all, args=("one", service)),
            threading.Thread(target=answer_all, args=("two", other)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # Each complaint answered exactly once, by one replica or the other.
        assert [a + b for a, b in zip(answers["one"], answers["two"], strict=True)] == [1] * 20
        ids = [r.complaint_id for r in registered]
        assert service.sql(
            "SELECT count(*) FROM complaint_transitions WHERE stage = 'ANSWERED' "
            "AND complaint_id = ANY(%s)",
            ids,
        ) == [(20,)]
    finally:
        other_server.stop(grace=None)
        kit.close()


def test_one_event_id_on_two_complaints_at_once_is_stored_once(service: Complaints) -> None:
    """Two calls racing with the same event id on different complaints (different complaint
    locks): the id is claimed once, the other call answers duplicate and stores nothing."""
    first, second = complaint(ENTITY), complaint(ENTITY)
    second.event_id = first.event_id
    answers: list[Any] = []
    start = threading.Barrier(2)

    def send(event: Any) -> None:
        start.wait()
        answers.append(service.push([event]).result)

    threads = [threading.Thread(target=send, args=(e,)) for e in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.accepted for a in answers) == [0, 1]
    assert sorted(len(a.duplicate_indexes) for a in answers) == [0, 1]
    stored = service.sql(
        "SELECT count(*) FROM complaints WHERE complaint_id = ANY(%s)",
        [first.complaint_id, second.complaint_id],
    )
    assert stored == [(1,)]
    assert service.sql(
        "SELECT count(*) FROM complaint_outbox WHERE event_id = %s", first.event_id
    ) == [(1,)]


def test_invalid_instants_are_refused_beside_stored_neighbours(service: Complaints) -> None:
    """Nanos out of range were an UNKNOWN for the whole call (found by tests/abuse)."""
    bad_nanos = complaint(ENTITY)
    bad_nanos.occurred_at.nanos = -1
    bad_filing = complaint(ENTITY)
    bad_filing.filed_at.nanos = 1_000_000_000
    good = complaint(ENTITY)
    answer = service.push([bad_nanos, good, bad_filing])
    assert answer.result.accepted == 1, answer.result
    refused = {(r.index, r.field, r.code) for r in answer.result.rejections}
    assert refused == {(0, "occurred_at", 2), (2, "filed_at", 2)}  # INVALID_FORMAT


def test_text_with_a_nul_character_is_refused_never_an_unknown_error(
    service: Complaints,
) -> None:
    """NUL in text reached PostgreSQL, which refuses it: the call ended UNKNOWN (tests/abuse)."""
    nul, fine = complaint(ENTITY, category="a\x00b"), complaint(ENTITY)
    answer = service.push([nul, fine])
    assert answer.result.accepted == 1
    assert [(r.index, r.field, r.code) for r in answer.result.rejections] == [(0, "category", 2)]
    with pytest.raises(grpc.RpcError) as refused:
        service.get("RECLAMO", entity="SUNARP\x00", token="national")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "entity_id: contains a NUL character (U+0000)"


def test_a_refused_event_id_may_be_sent_again_corrected(service: Complaints) -> None:
    early = stage("ANSWERED", unique("LATER", 10))
    assert service.push([early]).result.rejections[0].code == 10
    registered = complaint(ENTITY, complaint_id=early.complaint_id)
    answer = service.push([registered, early])
    assert answer.result.accepted == 2, answer.result
