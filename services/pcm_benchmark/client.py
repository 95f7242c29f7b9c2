"""The benchmark service's client (the retry rules are the push clients': a call is retried
while the answer says nothing was done)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pcm.monitoring.v1 import (
    benchmark_service_pb2,
    benchmark_service_pb2_grpc,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
)
from pcm_common.push.client import PushClient


class BenchmarkClient(PushClient):
    stub_type = benchmark_service_pb2_grpc.BenchmarkServiceStub

    def entity_assessment(
        self, entity_id: str = ""
    ) -> benchmark_service_pb2.GetEntityAssessmentResponse:
        """Every standard's result (and OVERALL) of the newest month, with the evidence."""
        request = benchmark_service_pb2.GetEntityAssessmentRequest(entity_id=entity_id)
        answer: benchmark_service_pb2.GetEntityAssessmentResponse = self.call(
            self.stub.GetEntityAssessment, request
        )
        return answer

    def peer_comparison(
        self, entity_id: str = "", period_start: dt.datetime | None = None
    ) -> benchmark_service_pb2.GetPeerComparisonResponse:
        """The entity's own results beside its peer group's anonymised distributions, for the
        MONTH starting at ``period_start`` (local midnight; default: the newest assessed)."""
        request = benchmark_service_pb2.GetPeerComparisonRequest(entity_id=entity_id)
        if period_start is not None:
            request.period_start.FromDatetime(period_start.astimezone(dt.UTC))
        answer: benchmark_service_pb2.GetPeerComparisonResponse = self.call(
            self.stub.GetPeerComparison, request
        )
        return answer


class CatalogueClient(PushClient):
    """The CatalogueService beside the benchmark: publish (national role) and read versions."""

    stub_type = catalogue_service_pb2_grpc.CatalogueServiceStub

    def publish(
        self, files: Mapping[str, str], author: str, note: str, validate_only: bool = False
    ) -> catalogue_service_pb2.PublishCataloguesResponse:
        """Validate and publish catalogue files (name -> YAML text), with who and why."""
        request = catalogue_service_pb2.PublishCataloguesRequest(
            files=[
                catalogue_service_pb2.CatalogueFile(name=name, content=content)
                for name, content in files.items()
            ],
            author=author,
            note=note,
            validate_only=validate_only,
        )
        answer: catalogue_service_pb2.PublishCataloguesResponse = self.call(
            self.stub.PublishCatalogues, request
        )
        return answer
