"""The surveys service on the real stack: collections and responses through the public API,
checked against each other in PostgreSQL, published (without free text) through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pcm.monitoring.v1 import survey_pb2, surveys_service_pb2, surveys_service_pb2_grpc
from pcm_common.auth import TokenStore
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect
from pcm_common.settings import Settings
from pcm_common.startup import ensure_topics
from pcm_surveys.server import create_server, worker
from pcm_surveys.settings import SurveysSettings
from pcm_testkit.events import ago, survey_collection, survey_response
from pcm_testkit.kafka import read_envelopes

ENTITY = "SUNAT"


@dataclass
class Surveys:
    settings: SurveysSettings
    stub: surveys_service_pb2_grpc.SurveysServiceStub
    tokens: dict[str, str]

    def collections(self, items: list[Any], token: str = ENTITY) -> Any:
        request = surveys_service_pb2.PushSurveyCollectionsRequest(collections=items)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.PushSurveyCollections(request, metadata=meta, timeout=30).result

    def responses(self, items: list[Any], token: str = ENTITY) -> Any:
        request = surveys_service_pb2.PushSurveyResponsesRequest(responses=items)
        meta = (("authorization", f"Bearer {self.tokens[token]}"),)
        return self.stub.PushSurveyResponses(request, metadata=meta, timeout=30).result

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.settings) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def service(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Surveys]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    store = TokenStore(token_file)
    tokens = {ENTITY: store.issue(ENTITY), "ONP": store.issue("ONP")}
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
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Surveys(settings, surveys_service_pb2_grpc.SurveysServiceStub(channel), tokens)
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
