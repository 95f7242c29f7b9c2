"""The indicators service's client for entities' systems (the retry rules are the kit's:
``pcm_common.push.client``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pcm.monitoring.v1 import (
    common_pb2,
    indicator_pb2,
    indicators_service_pb2,
    indicators_service_pb2_grpc,
)
from pcm_common.push.client import PushClient


class IndicatorsClient(PushClient):
    stub_type = indicators_service_pb2_grpc.IndicatorsServiceStub

    def report_indicator_values(
        self, values: Sequence[indicator_pb2.IndicatorValue]
    ) -> common_pb2.PushResult:
        request = indicators_service_pb2.ReportIndicatorValuesRequest
        return self.push(
            lambda batch: self.call(self.stub.ReportIndicatorValues, request(values=batch)).result,
            values,
        )

    def list_indicator_values(
        self, entity_id: str, indicator_code: str = "", include_history: bool = False
    ) -> Iterator[indicator_pb2.IndicatorValue]:
        """The entity's current reported values (or the whole history), newest first, fetching
        the pages as they are consumed."""
        return self.paged(
            self.stub.ListIndicatorValues,
            lambda token: indicators_service_pb2.ListIndicatorValuesRequest(
                entity_id=entity_id,
                indicator_code=indicator_code,
                include_history=include_history,
                page_token=token,
            ),
            "values",
        )
