"""The gRPC IntakeService: its two push declarations on the push-service kit.

Everything a push call does (authenticate, authorize, validate, dedupe, produce with the
broker's ack, answer per item) is the kit's (``pcm_common.push``); the intake adds which domains
it accepts and how one attention or procedure stage is validated.
"""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import (
    attention_pb2,
    intake_service_pb2,
    intake_service_pb2_grpc,
    procedure_pb2,
)
from pcm_common import domains
from pcm_common.push import PushDeclaration, PushKit

from pcm_intake.validation import AttentionRules, IntakeCatalogue, ProcedureStageRules


def declarations(
    catalogue: IntakeCatalogue,
) -> tuple[
    PushDeclaration[attention_pb2.AttentionEvent],
    PushDeclaration[procedure_pb2.ProcedureStageEvent],
]:
    return (
        PushDeclaration(domains.ATTENTION, AttentionRules(catalogue)),
        PushDeclaration(domains.PROCEDURE_STAGE, ProcedureStageRules(catalogue)),
    )


class IntakeServicer(intake_service_pb2_grpc.IntakeServiceServicer):
    def __init__(self, kit: PushKit, catalogue: IntakeCatalogue) -> None:
        attentions, procedure_stages = declarations(catalogue)
        self._attentions = kit.endpoint(attentions)
        self._procedure_stages = kit.endpoint(procedure_stages)

    def PushAttentions(  # noqa: N802 (gRPC method name)
        self, request: intake_service_pb2.PushAttentionsRequest, context: grpc.ServicerContext
    ) -> intake_service_pb2.PushAttentionsResponse:
        result = self._attentions.push(request.events, context)
        return intake_service_pb2.PushAttentionsResponse(result=result)

    def PushProcedureStages(  # noqa: N802 (gRPC method name)
        self,
        request: intake_service_pb2.PushProcedureStagesRequest,
        context: grpc.ServicerContext,
    ) -> intake_service_pb2.PushProcedureStagesResponse:
        result = self._procedure_stages.push(request.events, context)
        return intake_service_pb2.PushProcedureStagesResponse(result=result)
