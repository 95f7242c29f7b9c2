"""The intake's client for entities' systems (the retry rules are the kit's:
``pcm_common.push.client``)."""

from __future__ import annotations

from collections.abc import Sequence

from pcm.monitoring.v1 import (
    attention_pb2,
    common_pb2,
    intake_service_pb2,
    intake_service_pb2_grpc,
    procedure_pb2,
)
from pcm_common.push.client import PushClient


class IntakeClient(PushClient):
    stub_type = intake_service_pb2_grpc.IntakeServiceStub

    def push_attentions(
        self, events: Sequence[attention_pb2.AttentionEvent]
    ) -> common_pb2.PushResult:
        request = intake_service_pb2.PushAttentionsRequest
        return self.push(
            lambda batch: self.call(self.stub.PushAttentions, request(events=batch)).result,
            events,
        )

    def push_procedure_stages(
        self, events: Sequence[procedure_pb2.ProcedureStageEvent]
    ) -> common_pb2.PushResult:
        request = intake_service_pb2.PushProcedureStagesRequest
        return self.push(
            lambda batch: self.call(self.stub.PushProcedureStages, request(events=batch)).result,
            events,
        )
