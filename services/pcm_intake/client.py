"""A small client for entities' systems: authenticated, batched, retrying on retryable codes.

Entities that integrate in Python can use it as is; it is also the reference for other
languages (README, "For entity developers").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from pcm.monitoring.v1 import (
    attention_pb2,
    common_pb2,
    intake_service_pb2,
    intake_service_pb2_grpc,
    procedure_pb2,
)
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() in RETRYABLE


class IntakeClient:
    def __init__(
        self,
        target: str,
        token: str,
        ca_certificate: Path | None = None,
        timeout_s: float = 30,
        attempts: int = 6,
    ) -> None:
        if ca_certificate is None:
            self._channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(ca_certificate.read_bytes())
            self._channel = grpc.secure_channel(target, credentials)
        self._stub = intake_service_pb2_grpc.IntakeServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout_s = timeout_s
        self._retrying = retry(
            retry=retry_if_exception(_is_retryable),
            wait=wait_exponential_jitter(initial=0.5, max=10),
            stop=stop_after_attempt(attempts),
            reraise=True,
        )

    def push_attentions(
        self, events: Sequence[attention_pb2.AttentionEvent]
    ) -> common_pb2.PushResult:
        request = intake_service_pb2.PushAttentionsRequest(events=events)
        call = self._retrying(self._stub.PushAttentions)
        response = call(request, metadata=self._metadata, timeout=self._timeout_s)
        return response.result

    def push_procedure_stages(
        self, events: Sequence[procedure_pb2.ProcedureStageEvent]
    ) -> common_pb2.PushResult:
        request = intake_service_pb2.PushProcedureStagesRequest(events=events)
        call = self._retrying(self._stub.PushProcedureStages)
        response = call(request, metadata=self._metadata, timeout=self._timeout_s)
        return response.result

    def close(self) -> None:
        self._channel.close()
