"""The surveys service's client for entities' survey tools (the retry rules are the kit's:
``pcm_common.push.client``). Push a collection before its responses."""

from __future__ import annotations

from collections.abc import Sequence

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
