"""The complaints service's client for entities' complaint books (the retry rules are the kit's:
``pcm_common.push.client``). Events of one complaint must be sent in lifecycle order: a batch
is applied in order, and a refused transition is answered per item."""

from __future__ import annotations

from collections.abc import Sequence

from pcm.monitoring.v1 import (
    common_pb2,
    complaint_pb2,
    complaints_service_pb2,
    complaints_service_pb2_grpc,
)
from pcm_common.push.client import PushClient


class ComplaintsClient(PushClient):
    stub_type = complaints_service_pb2_grpc.ComplaintsServiceStub

    def push_complaint_events(
        self, events: Sequence[complaint_pb2.ComplaintEvent]
    ) -> common_pb2.PushResult:
        request = complaints_service_pb2.PushComplaintEventsRequest
        return self.push(
            lambda batch: self.call(self.stub.PushComplaintEvents, request(events=batch)).result,
            events,
        )

    def get_complaint(
        self, entity_id: str, complaint_id: str
    ) -> complaints_service_pb2.ComplaintStatus:
        request = complaints_service_pb2.GetComplaintRequest(
            entity_id=entity_id, complaint_id=complaint_id
        )
        answer: complaints_service_pb2.GetComplaintResponse = self.call(
            self.stub.GetComplaint, request
        )
        return answer.complaint
