"""The gRPC IndicatorsService: reports on the push kit (the indicator book is its sink), the
oversight body's review, and the listing of reported values."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import indicator_pb2, indicators_service_pb2, indicators_service_pb2_grpc
from pcm_common import domains
from pcm_common.auth import Access, Principal
from pcm_common.grpc_server import abort_with, authenticate
from pcm_common.push import PushDeclaration, PushKit
from pcm_common.push.reading import allowed, invalid_argument, page_size, refuse_nul

from pcm_indicators.book import IndicatorBook, ReviewError
from pcm_indicators.kpis import KpiReader, KpiStoreUnavailable
from pcm_indicators.metrics import REVIEWS
from pcm_indicators.validation import IndicatorRules

VERDICTS = (
    indicator_pb2.INDICATOR_STATUS_VERIFIED,
    indicator_pb2.INDICATOR_STATUS_REJECTED,
)
MAX_REASON = 500


class IndicatorsServicer(indicators_service_pb2_grpc.IndicatorsServiceServicer):
    def __init__(
        self,
        kit: PushKit,
        rules: IndicatorRules,
        book: IndicatorBook,
        kpis: KpiReader,
        page_size: int,
    ) -> None:
        self._kit = kit
        self._book = book
        self._kpis = kpis
        self._rules = rules
        self._page_size = page_size
        self._reports = kit.endpoint(PushDeclaration(domains.INDICATOR_VALUE, rules))

    def ReportIndicatorValues(  # noqa: N802 (gRPC method name)
        self,
        request: indicators_service_pb2.ReportIndicatorValuesRequest,
        context: grpc.ServicerContext,
    ) -> indicators_service_pb2.ReportIndicatorValuesResponse:
        result = self._reports.push(request.values, context)
        return indicators_service_pb2.ReportIndicatorValuesResponse(result=result)

    def ReviewIndicatorValue(  # noqa: N802 (gRPC method name)
        self,
        request: indicators_service_pb2.ReviewIndicatorValueRequest,
        context: grpc.ServicerContext,
    ) -> indicators_service_pb2.ReviewIndicatorValueResponse:
        self._allowed(context, Access.REVIEW, request.entity_id)
        refuse_nul(context, request)
        if request.verdict not in VERDICTS:
            invalid_argument(
                context, "verdict: INDICATOR_STATUS_VERIFIED or INDICATOR_STATUS_REJECTED"
            )
        if request.verdict == indicator_pb2.INDICATOR_STATUS_REJECTED and not request.reason:
            invalid_argument(context, "reason: required with a rejection")
        if len(request.reason) > MAX_REASON:
            invalid_argument(context, f"reason: at most {MAX_REASON} characters")
        try:
            value = self._book.review(
                request.entity_id, request.event_id, request.verdict, request.reason
            )
        except ReviewError as error:
            code = (
                grpc.StatusCode.NOT_FOUND
                if error.not_found
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            context.abort(code, str(error))
        REVIEWS.labels(verdict=indicator_pb2.IndicatorStatus.Name(request.verdict)).inc()
        self._with_validity([value])
        return indicators_service_pb2.ReviewIndicatorValueResponse(value=value)

    def ListIndicatorValues(  # noqa: N802 (gRPC method name)
        self,
        request: indicators_service_pb2.ListIndicatorValuesRequest,
        context: grpc.ServicerContext,
    ) -> indicators_service_pb2.ListIndicatorValuesResponse:
        self._allowed(context, Access.READ, request.entity_id)
        refuse_nul(context, request)
        size = page_size(request.page_size, self._page_size)
        try:
            page = self._book.list(
                request.entity_id,
                request.indicator_code,
                request.include_history,
                size,
                request.page_token,
            )
        except ValueError as error:
            invalid_argument(context, str(error))
        self._with_validity(page.values)
        return indicators_service_pb2.ListIndicatorValuesResponse(
            values=page.values, next_page_token=page.next_token
        )

    def ListKpis(  # noqa: N802 (gRPC method name)
        self, request: indicators_service_pb2.ListKpisRequest, context: grpc.ServicerContext
    ) -> indicators_service_pb2.ListKpisResponse:
        principal = self._caller(context)
        entity_id = request.entity_id or principal.entity_id
        self._allowed(context, Access.READ, entity_id)
        size = page_size(request.page_size, self._page_size)
        try:
            page = self._kpis.page(entity_id, request, size)
        except ValueError as error:
            invalid_argument(context, str(error))
        except KpiStoreUnavailable:
            abort_with(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "ERROR_REASON_STORE_UNAVAILABLE",
                "KPI store (ClickHouse) unavailable; retry",
                retry_after_s=self._kit.limits.retry_after_s,
            )
        return indicators_service_pb2.ListKpisResponse(
            values=page.values, next_page_token=page.next_token
        )

    def _with_validity(self, values: list[indicator_pb2.IndicatorValue]) -> None:
        """Say on each value until when it counts and whether it still does (the catalogue's
        validity window after the end of its period)."""
        today = self._rules.today()
        for value in values:
            until = self._rules.valid_until(value)
            if until is not None:
                value.valid_until = until.isoformat()
                value.still_valid = today <= until

    def _caller(self, context: grpc.ServicerContext) -> Principal:
        return authenticate(context, self._kit.tokens, self._kit.metrics.auth_failures)

    def _allowed(self, context: grpc.ServicerContext, access: Access, entity_id: str) -> Principal:
        return allowed(self._kit, context, access, entity_id)
