"""The surveys service's client for entities' survey tools (the retry rules are the kit's:
``pcm_common.push.client``). Push a collection before its responses; read them back page after
page (an entity its own, with the comments; the national role any entity's, without)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pcm.monitoring.v1 import (
    common_pb2,
    survey_pb2,
    surveys_service_pb2,
    surveys_service_pb2_grpc,
)
from pcm_common.push.client import PushClient


class SurveysClient(PushClient):
    stub_type = surveys_service_pb2_grpc.SurveysServiceStub

    def push_survey_collections(
        self, collections: Sequence[survey_pb2.SurveyCollection]
    ) -> common_pb2.PushResult:
        request = surveys_service_pb2.PushSurveyCollectionsRequest
        return self.push(
            lambda batch: (
                self.call(self.stub.PushSurveyCollections, request(collections=batch)).result
            ),
            collections,
        )

    def push_survey_responses(
        self, responses: Sequence[survey_pb2.SurveyResponse]
    ) -> common_pb2.PushResult:
        request = surveys_service_pb2.PushSurveyResponsesRequest
        return self.push(
            lambda batch: self.call(self.stub.PushSurveyResponses, request(responses=batch)).result,
            responses,
        )

    def list_survey_collections(
        self, entity_id: str, collection_id: str = "", page_size: int = 0
    ) -> Iterator[survey_pb2.SurveyCollection]:
        """Every collection of ``entity_id`` (or only ``collection_id``), newest first, fetching
        the pages as they are consumed (a read is retried like a call that stored nothing)."""
        return self.paged(
            self.stub.ListSurveyCollections,
            lambda token: surveys_service_pb2.ListSurveyCollectionsRequest(
                entity_id=entity_id,
                collection_id=collection_id,
                page_size=page_size,
                page_token=token,
            ),
            "collections",
        )

    def list_survey_responses(
        self, entity_id: str, collection_id: str = "", page_size: int = 0
    ) -> Iterator[surveys_service_pb2.StoredSurveyResponse]:
        """Every stored response of ``entity_id`` (or of its collection ``collection_id``),
        newest first, fetching the pages as they are consumed."""
        return self.paged(
            self.stub.ListSurveyResponses,
            lambda token: surveys_service_pb2.ListSurveyResponsesRequest(
                entity_id=entity_id,
                collection_id=collection_id,
                page_size=page_size,
                page_token=token,
            ),
            "responses",
        )
