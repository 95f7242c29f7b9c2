"""The gRPC SurveysService: collections and responses, two push declarations on the push kit;
the survey book (``book.py``) is its sink."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import surveys_service_pb2, surveys_service_pb2_grpc
from pcm_common import domains
from pcm_common.push import PushDeclaration, PushKit

from pcm_surveys.validation import CollectionRules, ResponseRules, SurveyCatalogue


class SurveysServicer(surveys_service_pb2_grpc.SurveysServiceServicer):
    def __init__(self, kit: PushKit, catalogue: SurveyCatalogue) -> None:
        self._collections = kit.endpoint(
            PushDeclaration(domains.SURVEY_COLLECTION, CollectionRules(catalogue))
        )
        self._responses = kit.endpoint(
            PushDeclaration(domains.SURVEY_RESPONSE, ResponseRules(catalogue))
        )

    def PushSurveyCollections(  # noqa: N802 (gRPC method name)
        self,
        request: surveys_service_pb2.PushSurveyCollectionsRequest,
        context: grpc.ServicerContext,
    ) -> surveys_service_pb2.PushSurveyCollectionsResponse:
        result = self._collections.push(request.collections, context)
        return surveys_service_pb2.PushSurveyCollectionsResponse(result=result)

    def PushSurveyResponses(  # noqa: N802 (gRPC method name)
        self,
        request: surveys_service_pb2.PushSurveyResponsesRequest,
        context: grpc.ServicerContext,
    ) -> surveys_service_pb2.PushSurveyResponsesResponse:
        result = self._responses.push(request.responses, context)
        return surveys_service_pb2.PushSurveyResponsesResponse(result=result)
