"""The gRPC IntakeService: authenticate, rate-limit, validate, produce with ack, answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from pcm.monitoring.v1 import common_pb2, intake_service_pb2, intake_service_pb2_grpc
from pcm_common import metrics
from pcm_common.auth import Principal, Role, TokenStore
from pcm_common.grpc_server import abort, authenticate
from pcm_common.kafka.envelope import wrap
from pcm_common.kafka.producer import AcknowledgedProducer, BrokerUnavailable
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger
from pcm_common.validation import FieldError, TimeWindow

from pcm_intake.batch import BatchPlan, PushedEvent, plan_batch
from pcm_intake.dedupe import DedupeWindow
from pcm_intake.settings import IntakeSettings
from pcm_intake.validation import IntakeCatalogue, attention_errors, procedure_errors

log = get_logger(__name__)
Validator = Callable[[PushedEvent, str, IntakeCatalogue, TimeWindow], list[FieldError]]


@dataclass(frozen=True)
class PushKind:
    """One push method: which topic domain it feeds and how its items are validated."""

    method: str
    domain: str
    validate: Validator


ATTENTIONS = PushKind("PushAttentions", "attention", attention_errors)  # type: ignore[arg-type]
PROCEDURE_STAGES = PushKind("PushProcedureStages", "procedure", procedure_errors)  # type: ignore[arg-type]


class RateLimiter:
    """Per-entity events/second (sliding window), shared by every method of a replica."""

    def __init__(self, events_per_second: int) -> None:
        self._item = RateLimitItemPerSecond(events_per_second) if events_per_second else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def allow(self, entity_id: str, events: int) -> bool:
        if self._item is None or events == 0:
            return True
        return self._limiter.hit(self._item, entity_id, cost=events)


class IntakeServicer(intake_service_pb2_grpc.IntakeServiceServicer):
    def __init__(
        self,
        settings: IntakeSettings,
        catalogue: IntakeCatalogue,
        tokens: TokenStore,
        producer: AcknowledgedProducer,
    ) -> None:
        self._settings = settings
        self._catalogue = catalogue
        self._tokens = tokens
        self._producer = producer
        self._dedupe = DedupeWindow(settings.intake_dedupe_window)
        self._rate = RateLimiter(settings.intake_rate_limit_events_per_s)

    def PushAttentions(  # noqa: N802 (gRPC method name)
        self, request: intake_service_pb2.PushAttentionsRequest, context: grpc.ServicerContext
    ) -> intake_service_pb2.PushAttentionsResponse:
        result = self._push(ATTENTIONS, request.events, context)
        return intake_service_pb2.PushAttentionsResponse(result=result)

    def PushProcedureStages(  # noqa: N802 (gRPC method name)
        self,
        request: intake_service_pb2.PushProcedureStagesRequest,
        context: grpc.ServicerContext,
    ) -> intake_service_pb2.PushProcedureStagesResponse:
        result = self._push(PROCEDURE_STAGES, request.events, context)
        return intake_service_pb2.PushProcedureStagesResponse(result=result)

    # ------------------------------------------------------------------------------------------
    def _push(
        self, kind: PushKind, events: Sequence[Message], context: grpc.ServicerContext
    ) -> common_pb2.PushResult:
        in_flight = metrics.INTAKE_REQUESTS_IN_FLIGHT.labels(method=kind.method)
        in_flight.inc()
        try:
            with metrics.INTAKE_BATCH_SECONDS.labels(method=kind.method).time():
                return self._push_batch(kind, events, context)
        finally:
            in_flight.dec()

    def _push_batch(
        self, kind: PushKind, events: Sequence[Message], context: grpc.ServicerContext
    ) -> common_pb2.PushResult:
        principal = self._authorize(context)
        self._check_size_and_rate(principal, len(events), context)
        window = self._time_window()
        plan = plan_batch(
            events,  # type: ignore[arg-type]
            lambda event: kind.validate(event, principal.entity_id, self._catalogue, window),
            self._dedupe,
        )
        if events and plan.foreign_items == len(events):
            abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"every event belongs to another entity than {principal.entity_id!r}",
            )
        self._produce(kind, plan, principal, context)
        self._count(kind, plan, principal)
        return to_result(plan)

    def _authorize(self, context: grpc.ServicerContext) -> Principal:
        principal = authenticate(context, self._tokens)
        if principal.role is not Role.ENTITY:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, "only entity credentials push events")
        return principal

    def _check_size_and_rate(
        self, principal: Principal, count: int, context: grpc.ServicerContext
    ) -> None:
        limit = self._settings.intake_max_batch
        if count > limit:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"events: batch of {count} exceeds the limit of {limit} per call",
            )
        if not self._rate.allow(principal.entity_id, count):
            metrics.INTAKE_RATE_LIMITED.labels(entity=principal.entity_id).inc()
            self._abort_with_retry(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit of {self._settings.intake_rate_limit_events_per_s}"
                f" events/s for {principal.entity_id} exceeded",
            )

    def _time_window(self) -> TimeWindow:
        return TimeWindow(
            now_s=time.time(),
            future_skew_s=self._settings.intake_future_skew_s,
            max_age_s=self._settings.intake_max_age_days * 86_400,
        )

    def _produce(
        self, kind: PushKind, plan: BatchPlan, principal: Principal, context: grpc.ServicerContext
    ) -> None:
        """Write the accepted items; answer only after the broker's ack, else UNAVAILABLE."""
        received_at = Timestamp()
        received_at.GetCurrentTime()
        key = principal.entity_id.encode()
        records = [
            (key, wrap(event, principal.entity_id, received_at).SerializeToString())  # type: ignore[arg-type]
            for _, event in plan.accepted
        ]
        topic = topic_for_domain(kind.domain).name(self._settings.topic_prefix)
        try:
            self._producer.send_and_wait(topic, records)
        except BrokerUnavailable as error:
            self._dedupe.release(plan.accepted_keys)
            metrics.INTAKE_KAFKA_PRODUCE_ERRORS.inc()
            log.warning(
                "batch refused: broker unavailable",
                entity=principal.entity_id,
                events=len(records),
                error=str(error),
            )
            self._abort_with_retry(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "event store (Kafka) unavailable; nothing was stored, retry",
            )
        self._dedupe.confirm(plan.accepted_keys)

    def _abort_with_retry(
        self, context: grpc.ServicerContext, code: grpc.StatusCode, message: str
    ) -> NoReturn:
        """Abort with a retry hint: gRPC's standard pushback trailer plus a plain one."""
        delay_ms = str(self._settings.intake_retry_after_s * 1000)
        context.set_trailing_metadata(
            (("grpc-retry-pushback-ms", delay_ms), ("retry-after-ms", delay_ms))
        )
        abort(context, code, f"{message} (retry after {self._settings.intake_retry_after_s} s)")

    @staticmethod
    def _count(kind: PushKind, plan: BatchPlan, principal: Principal) -> None:
        entity = principal.entity_id
        if plan.accepted:
            metrics.INTAKE_EVENTS_ACCEPTED.labels(entity=entity, domain=kind.domain).inc(
                len(plan.accepted)
            )
        if plan.duplicates:
            metrics.INTAKE_EVENTS_DUPLICATE.labels(entity=entity, domain=kind.domain).inc(
                len(plan.duplicates)
            )
        for rejection in plan.rejections:
            metrics.INTAKE_EVENTS_REJECTED.labels(entity=entity, reason=rejection.field).inc()


def to_result(plan: BatchPlan) -> common_pb2.PushResult:
    return common_pb2.PushResult(
        accepted=len(plan.accepted),
        duplicate_indexes=plan.duplicates,
        rejections=[
            common_pb2.ItemRejection(
                index=r.index, event_id=r.event_id, field=r.field, reason=r.reason
            )
            for r in plan.rejections
        ],
    )
