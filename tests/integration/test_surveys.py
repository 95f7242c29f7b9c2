"""The surveys service on the real stack: collections and responses through the public API,
checked against each other in PostgreSQL, published (without free text) through the outbox, and
read back (an entity its own with the comments, the national role any entity's without)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pcm.monitoring.v1 import survey_pb2, surveys_service_pb2, surveys_service_pb2_grpc
from pcm_common.auth import Role, TokenStore
from pcm_common.grpc_server import error_reason
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect
from pcm_common.settings import Settings
from pcm_common.startup import ensure_topics
from pcm_surveys.client import SurveysClient
from pcm_surveys.server import create_server, worker
from pcm_surveys.settings import SurveysSettings
from pcm_testkit.events import ago, survey_collection, survey_response
from pcm_testkit.kafka import read_envelopes
from pcm_testkit.waiting import wait_until

ENTITY = "SUNAT"


@dataclass
class Surveys:
    settings: SurveysSettings
    stub: surveys_service_pb2_grpc.SurveysServiceStub
    tokens: dict[str, str]
    target: str

    def collections(self, items: list[Any], token: str = ENTITY) -> Any:
        request = surveys_service_pb2.PushSurveyCollectionsRequest(collections=items)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.PushSurveyCollections(request, metadata=meta, timeout=30).result

    def responses(self, items: list[Any], token: str = ENTITY) -> Any:
        request = surveys_service_pb2.PushSurveyResponsesRequest(responses=items)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.PushSurveyResponses(request, metadata=meta, timeout=30).result

    def list_collections(self, token: str = ENTITY, **fields: Any) -> Any:
        request = surveys_service_pb2.ListSurveyCollectionsRequest(**fields)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.ListSurveyCollections(request, metadata=meta, timeout=30)

    def list_responses(self, token: str = ENTITY, **fields: Any) -> Any:
        request = surveys_service_pb2.ListSurveyResponsesRequest(**fields)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.ListSurveyResponses(request, metadata=meta, timeout=30)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.settings) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def service(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Surveys]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    store = TokenStore(token_file)
    tokens = {
        ENTITY: store.issue(ENTITY),
        "ONP": store.issue("ONP"),
        "national": store.issue("PCM-SGP", Role.NATIONAL),
    }
    settings = SurveysSettings(
        topic_prefix=isolated_settings.topic_prefix,
        postgres_database=isolated_settings.postgres_database,
        token_file=token_file,
        surveys_address="127.0.0.1:0",
        surveys_metrics_port=0,
    )
    ensure_topics(settings)
    server, port, kit = create_server(settings)
    server.start()
    target = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(target)
    try:
        stub = surveys_service_pb2_grpc.SurveysServiceStub(channel)
        yield Surveys(settings, stub, tokens, target)
    finally:
        channel.close()
        server.stop(grace=None)
        kit.close()


def test_collection_then_responses_published_without_free_text(service: Surveys) -> None:
    collection = survey_collection(ENTITY, offered=2, responses=2)
    assert service.collections([collection]).accepted == 1
    answers = [
        survey_response(ENTITY, collection_id=collection.collection_id, comment="Mi DNI es 4567")
        for _ in range(3)
    ]
    result = service.responses(answers)
    assert result.accepted == 3  # the third is beyond the 2 offered: stored, flagged, counted
    flagged = service.sql(
        "SELECT response_id FROM survey_responses WHERE collection_id = %s AND beyond_offered",
        collection.collection_id,
    )
    assert [r[0] for r in flagged] == [answers[2].response_id]
    worker(service.settings).work_once()
    topic = topic_for_domain("survey_response").name(service.settings.topic_prefix)
    published = [
        e.survey_response for _, e in read_envelopes(service.settings.kafka_bootstrap, topic, 3)
    ]
    mine = [r for r in published if r.collection_id == collection.collection_id]
    assert len(mine) == 3 and all(not r.comment for r in mine)
    assert service.sql("SELECT count(*) FROM survey_responses WHERE comment LIKE 'Mi DNI%%'") == [
        (3,)
    ]  # kept for the entity's own reading, in its book only


def test_responses_checked_against_their_collection(service: Surveys) -> None:
    collection = survey_collection(ENTITY)
    assert service.collections([collection]).accepted == 1
    fine = survey_response(ENTITY, collection_id=collection.collection_id)
    unknown = survey_response(ENTITY, collection_id="NO-SUCH-COLLECTION")
    late = survey_response(ENTITY, collection_id=collection.collection_id, answered_at=ago(3600))
    low = survey_response(
        ENTITY,
        collection_id=collection.collection_id,
        scores=[survey_pb2.DriverScore(driver="TIEMPO", score=1)],
    )
    result = service.responses([fine, unknown, late, low])
    assert result.accepted == 2  # a low score is an answer like any other
    assert {(r.index, r.field) for r in result.rejections} == {
        (1, "collection_id"),
        (2, "answered_at"),
    }
    again = service.responses([fine])
    assert list(again.duplicate_indexes) == [0]
    twice = service.collections([survey_collection(ENTITY, collection_id=collection.collection_id)])
    assert [r.field for r in twice.rejections] == ["collection_id"]


def test_foreign_entity_refused(service: Surveys) -> None:
    theirs = survey_collection("ONP")
    with pytest.raises(grpc.RpcError) as refused:
        service.collections([theirs])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert service.collections([theirs], token="ONP").accepted == 1
    mine = survey_response(ENTITY, collection_id=theirs.collection_id)
    result = service.responses([mine])  # another entity's collection is unknown to this one
    assert [r.field for r in result.rejections] == ["collection_id"]


# --- reading back ------------------------------------------------------------------------------


def _answered(entity_id: str, collection: Any, count: int, **overrides: Any) -> list[Any]:
    """``count`` responses of ``collection``, answered in its period, each with a comment."""
    return [
        survey_response(
            entity_id,
            collection_id=collection.collection_id,
            answered_at=ago(2 * 86_400),
            comment=f"Me atendieron bien, mi DNI es 4567{n}",
            **overrides,
        )
        for n in range(count)
    ]


def test_own_collections_and_responses_read_back_with_comment(service: Surveys) -> None:
    collection = survey_collection(ENTITY, offered=1, responses=1, mode="WEB", language="QUECHUA")
    assert service.collections([collection]).accepted == 1
    first, second = _answered(
        ENTITY,
        collection,
        2,
        scores=[
            survey_pb2.DriverScore(driver="TIEMPO", score=2, status="ANSWER_STATUS_SCORED"),
            survey_pb2.DriverScore(driver="INFORMACION", status="ANSWER_STATUS_DOES_NOT_APPLY"),
        ],
        overall=survey_pb2.DriverScore(score=4),
    )
    assert service.responses([first]).accepted == 1
    assert service.responses([second]).accepted == 1  # beyond the one person offered

    listed = service.list_collections(entity_id=ENTITY, collection_id=collection.collection_id)
    assert list(listed.collections) == [collection] and not listed.next_page_token

    read = service.list_responses(entity_id=ENTITY, collection_id=collection.collection_id)
    assert [r.response for r in read.responses] == [second, first]  # newest first, as pushed
    assert [r.beyond_offered for r in read.responses] == [True, False]
    assert read.responses[0].response.comment.startswith("Me atendieron bien")
    assert not read.next_page_token


def test_national_role_reads_any_entity_without_comment(service: Surveys) -> None:
    theirs = survey_collection("ONP")
    assert service.collections([theirs], token="ONP").accepted == 1
    answers = _answered("ONP", theirs, 2)
    assert service.responses(answers, token="ONP").accepted == 2

    collections = service.list_collections(
        "national", entity_id="ONP", collection_id=theirs.collection_id
    )
    assert list(collections.collections) == [theirs]
    read = service.list_responses("national", entity_id="ONP", collection_id=theirs.collection_id)
    assert {r.response.response_id for r in read.responses} == {a.response_id for a in answers}
    for stored in read.responses:
        assert stored.response.comment == ""  # free text never goes into the national reading
        assert len(stored.response.scores) == len(answers[0].scores)
    own = service.list_responses("ONP", entity_id="ONP", collection_id=theirs.collection_id)
    assert all(r.response.comment for r in own.responses)  # the entity itself reads it


def test_foreign_entity_refused_reading(service: Surveys) -> None:
    for call in (service.list_collections, service.list_responses):
        with pytest.raises(grpc.RpcError) as refused:
            call(ENTITY, entity_id="ONP")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused.value) == "ERROR_REASON_FOREIGN_ENTITY"


def test_paging_returns_every_item_exactly_once(service: Surveys) -> None:
    collection = survey_collection(ENTITY)
    more = [survey_collection(ENTITY) for _ in range(4)]
    assert service.collections([collection, *more[:2]]).accepted == 3
    assert service.collections(more[2:]).accepted == 2
    answers = _answered(ENTITY, collection, 7)
    assert service.responses(answers[:5]).accepted == 5  # one transaction: one recorded_at
    assert service.responses(answers[5:]).accepted == 2

    pages, token = [], ""
    while True:
        page = service.list_responses(
            entity_id=ENTITY, collection_id=collection.collection_id, page_size=3, page_token=token
        )
        pages.append([r.response.response_id for r in page.responses])
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [response_id for p in pages for response_id in p]
    assert sorted(seen) == sorted(a.response_id for a in answers)

    client = SurveysClient(service.target, service.tokens[ENTITY])
    try:
        declared = [c.collection_id for c in client.list_survey_collections(ENTITY, page_size=2)]
        stored = list(client.list_survey_responses(ENTITY, collection.collection_id, page_size=2))
    finally:
        client.close()
    assert len(declared) == len(set(declared))  # every collection of the entity once
    assert {c.collection_id for c in [collection, *more]} <= set(declared)
    assert sorted(r.response.response_id for r in stored) == sorted(seen)


def test_bad_page_token_is_invalid_argument(service: Surveys) -> None:
    for call in (service.list_collections, service.list_responses):
        with pytest.raises(grpc.RpcError) as refused:
            call(entity_id=ENTITY, page_token="garbage")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith("page_token:")


def test_text_with_a_nul_character_is_refused_never_an_unknown_error(service: Surveys) -> None:
    """PostgreSQL refuses NUL in text: a comment holding one ended the whole push UNKNOWN and a
    collection_id holding one the read (found by tests/abuse). The item is refused on its own."""
    collection = survey_collection(ENTITY)
    assert service.collections([collection]).accepted == 1
    nul = survey_response(ENTITY, collection_id=collection.collection_id, comment="DNI\x00 4567")
    fine = survey_response(ENTITY, collection_id=collection.collection_id)
    result = service.responses([nul, fine])
    assert result.accepted == 1
    assert [(r.index, r.field, r.code) for r in result.rejections] == [(0, "comment", 2)]
    for call in (service.list_collections, service.list_responses):
        with pytest.raises(grpc.RpcError) as refused:
            call(entity_id=ENTITY, collection_id="ENC\x00")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == "collection_id: contains a NUL character (U+0000)"
        with pytest.raises(grpc.RpcError) as forged:  # a token naming a key with NUL
            call(entity_id=ENTITY, page_token="WyIyMDI2LTAxLTAxIiwgIlx1MDAwMCJd")
        assert forged.value.details().startswith("page_token:")


def test_one_response_sent_twice_at_once_is_stored_once_and_never_refused(
    service: Surveys,
) -> None:
    """A client whose call timed out sends it again while the first call is still storing it
    (found by the fault soak, issue 14, during a PostgreSQL outage). Both calls find the event id
    unknown, then wait on the collection's row lock, held here until both do: the second to
    insert must answer "duplicate", not refuse a response that is stored."""
    collection = survey_collection(ENTITY)
    assert service.collections([collection]).accepted == 1
    response = survey_response(ENTITY, collection_id=collection.collection_id)
    with connect(service.settings) as gate, ThreadPoolExecutor(2) as pool:
        gate.execute(
            "SELECT 1 FROM survey_collections WHERE entity_id = %s AND collection_id = %s "
            "FOR UPDATE",
            (ENTITY, collection.collection_id),
        )
        calls = [pool.submit(service.responses, [response]) for _ in range(2)]
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        wait_until(lambda: service.sql(waiting)[0][0] >= 2, 30, "both calls wait on the lock")
        gate.commit()
        answers = [call.result(timeout=30) for call in calls]
    assert not [r for a in answers for r in a.rejections], answers
    assert sorted((a.accepted, list(a.duplicate_indexes)) for a in answers) == [(0, [0]), (1, [])]
    stored = "SELECT count(*) FROM survey_responses WHERE entity_id = %s AND event_id = %s"
    assert service.sql(stored, ENTITY, response.event_id) == [(1,)]
