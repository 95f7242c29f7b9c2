"""The gRPC SurveysService: collections and responses, two push declarations on the push kit;
the survey book (``book.py``) is its sink, and answers the reading back (an entity its own, the
national role any entity's, never with the responses' free text)."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import surveys_service_pb2, surveys_service_pb2_grpc
from pcm_common import domains
from pcm_common.auth import Access, Role
from pcm_common.push import PushDeclaration, PushKit
from pcm_common.push.reading import allowed, invalid_argument, page_size, refuse_nul

from pcm_surveys.book import SurveyBook
from pcm_surveys.validation import CollectionRules, ResponseRules, SurveyCatalogue


class SurveysServicer(surveys_service_pb2_grpc.SurveysServiceServicer):
    def __init__(
        self, kit: PushKit, catalogue: SurveyCatalogue, book: SurveyBook, page_size: int
    ) -> None:
        self._kit = kit
        self._book = book
        self._page_size = page_size
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

    def ListSurveyCollections(  # noqa: N802 (gRPC method name)
        self,
        request: surveys_service_pb2.ListSurveyCollectionsRequest,
        context: grpc.ServicerContext,
    ) -> surveys_service_pb2.ListSurveyCollectionsResponse:
        allowed(self._kit, context, Access.READ, request.entity_id)
        refuse_nul(context, request)
        size = page_size(request.page_size, self._page_size)
        try:
            page = self._book.list_collections(
                request.entity_id, request.collection_id, size, request.page_token
            )
        except ValueError as error:
            invalid_argument(context, str(error))
        return surveys_service_pb2.ListSurveyCollectionsResponse(
            collections=page.items, next_page_token=page.next_token
        )

    def ListSurveyResponses(  # noqa: N802 (gRPC method name)
        self,
        request: surveys_service_pb2.ListSurveyResponsesRequest,
        context: grpc.ServicerContext,
    ) -> surveys_service_pb2.ListSurveyResponsesResponse:
        principal = allowed(self._kit, context, Access.READ, request.entity_id)
        refuse_nul(context, request)
        # The free text may hold personal data: for the entity's own reading only, never in
        # the national role's (authorize has checked an entity credential reads its own).
        own = principal.role is Role.ENTITY and principal.entity_id == request.entity_id
        size = page_size(request.page_size, self._page_size)
        try:
            page = self._book.list_responses(
                request.entity_id, request.collection_id, own, size, request.page_token
            )
        except ValueError as error:
            invalid_argument(context, str(error))
        return surveys_service_pb2.ListSurveyResponsesResponse(
            responses=page.items, next_page_token=page.next_token
        )
