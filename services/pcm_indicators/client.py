"""The indicators service's client for entities' systems (the retry rules are the kit's:
``pcm_common.push.client``)."""

from __future__ import annotations

from collections.abc import Sequence

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
