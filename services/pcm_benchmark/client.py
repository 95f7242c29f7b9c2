"""The benchmark service's client (the retry rules are the push clients': a call is retried
while the answer says nothing was done)."""

from __future__ import annotations

from pcm.monitoring.v1 import benchmark_service_pb2, benchmark_service_pb2_grpc
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
        self, entity_id: str = ""
    ) -> benchmark_service_pb2.GetPeerComparisonResponse:
        """The entity's own results beside its peer group's anonymised distributions."""
        request = benchmark_service_pb2.GetPeerComparisonRequest(entity_id=entity_id)
        answer: benchmark_service_pb2.GetPeerComparisonResponse = self.call(
            self.stub.GetPeerComparison, request
        )
        return answer
