"""The push-service kit: what every service that accepts entity events does, written once.

A service declares its push methods (``PushDeclaration``: the event domain and the validator of
one item) and the kit runs each call through the same steps:

authenticate → authorize (entity role, own entity) → batch limit → per-entity rate limit →
per-item validation → in-batch dedupe → the kit's *sink* stores the accepted items → per-item
result (accepted, duplicate, or refused with field, reason and code).

The sink is where services differ: the intake's (``BrokerSink``) claims each event id in the
ledger, produces to Kafka and waits for the broker's ack; the complaints service's commits each
transition and its event to PostgreSQL in one transaction (an outbox relayed to Kafka).

The answer is bounded by the batch limit: at most ``MAX_ERRORS_PER_ITEM`` refusals per item,
each clipped, so no input can make an answer larger than the transport allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from pcm.monitoring.v1 import common_pb2

from pcm_common.auth import Access, Principal, TokenStore, authorize, denial_message
from pcm_common.domains import EventDomain
from pcm_common.grpc_server import abort_with, authenticate
from pcm_common.kafka.envelope import wrap
from pcm_common.kafka.producer import BrokerUnavailable, EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger
from pcm_common.push.ledger import Claim, EventLedger, LedgerUnavailable
from pcm_common.push.metrics import PushMetrics
from pcm_common.validation import (
    FOREIGN_ENTITY,
    IN_PROGRESS,
    INVALID_FORMAT,
    MAX_ID_LENGTH,
    FieldError,
    TimeWindow,
    check_entity,
    check_id,
    clip,
    nul_fields,
)

log = get_logger(__name__)

E = TypeVar("E", bound=Message)
MAX_ERRORS_PER_ITEM = 10


@dataclass(frozen=True)
class ItemContext:
    """What a validator knows besides the item: the caller's entity and the accepted times."""

    entity_id: str
    window: TimeWindow


Validator = Callable[[E, ItemContext], Iterable[FieldError]]


@dataclass(frozen=True)
class PushDeclaration(Generic[E]):
    """One push method of a service: the domain it accepts and how one item is validated."""

    domain: EventDomain
    validate: Validator[E]

    @property
    def method(self) -> str:
        assert self.domain.push is not None, f"{self.domain.name} is not pushed by entities"
        return self.domain.push.method


@dataclass(frozen=True)
class PushLimits:
    max_batch: int
    rate_limit_events_per_s: int
    """Per entity and replica; 0 disables."""
    retry_after_s: float
    future_skew_s: float
    max_age_days: int


@dataclass(frozen=True)
class Refusal:
    index: int
    event_id: str
    error: FieldError


@dataclass
class Outcome:
    """How one batch was sorted."""

    accepted: list[tuple[int, str, Message]] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    foreign_items: int = 0
    receipts: dict[int, Any] = field(default_factory=dict)
    """What the sink reports per stored item, by index (e.g. a complaint's due date)."""


class StoreUnavailable(Exception):
    """The sink could store nothing (its store is unreachable): the call is refused UNAVAILABLE
    with ``reason`` (an ErrorReason name)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ItemSink(Protocol):
    """The last step of a push: store the accepted items of one call.

    ``outcome.accepted`` holds the valid items, one per event id; the sink stores them and moves
    those it does not store to ``duplicates`` (stored by an earlier call) or ``refusals``. It
    raises ``StoreUnavailable`` when it could store none of them."""

    def store(self, domain: str, entity_id: str, outcome: Outcome) -> None: ...

    def close(self) -> None: ...


class BrokerSink:
    """Events go to their domain's Kafka topic: claimed in the event-id ledger, produced, and
    answered only after the broker's ack (the intake's sink)."""

    def __init__(
        self,
        producer: EventProducer,
        ledger: EventLedger,
        metrics: PushMetrics,
        topic_prefix: str = "",
    ) -> None:
        self.producer = producer
        self.ledger = ledger
        self._metrics = metrics
        self._topic_prefix = topic_prefix

    def store(self, domain: str, entity_id: str, outcome: Outcome) -> None:
        self._claim(domain, entity_id, outcome)
        self._produce(domain, entity_id, outcome)

    def _claim(self, domain: str, entity_id: str, outcome: Outcome) -> None:
        """The ledger decides whether an earlier call already stored an id."""
        candidates = outcome.accepted
        try:
            claims = self.ledger.claim(domain, entity_id, [c[1] for c in candidates])
        except LedgerUnavailable as error:
            self._metrics.ledger_errors.inc()
            log.warning("batch refused: ledger unavailable", entity=entity_id, error=str(error))
            raise StoreUnavailable(
                "ERROR_REASON_LEDGER_UNAVAILABLE", "event-id ledger unavailable"
            ) from error
        outcome.accepted = []
        for (index, event_id, event), claim in zip(candidates, claims, strict=True):
            if claim is Claim.NEW:
                outcome.accepted.append((index, event_id, event))
            elif claim is Claim.DUPLICATE:
                outcome.duplicates.append(index)
            else:
                reason = "being stored by another call right now; send it again later"
                outcome.refusals.append(
                    Refusal(index, event_id, FieldError("event_id", reason, IN_PROGRESS))
                )

    def _produce(self, domain: str, entity_id: str, outcome: Outcome) -> None:
        """Write the accepted items; return only after the broker's ack."""
        received_at = Timestamp()
        received_at.GetCurrentTime()
        key = entity_id.encode()
        records = [
            (key, wrap(event, entity_id, received_at).SerializeToString())
            for _, _, event in outcome.accepted
        ]
        ids = [event_id for _, event_id, _ in outcome.accepted]
        topic = topic_for_domain(domain).name(self._topic_prefix)
        try:
            self.producer.send_and_wait(topic, records)
        except BrokerUnavailable as error:
            self.ledger.release(domain, entity_id, ids)
            self._metrics.produce_errors.inc()
            log.warning(
                "batch refused: broker unavailable",
                entity=entity_id,
                events=len(records),
                error=str(error),
            )
            raise StoreUnavailable(
                "ERROR_REASON_BROKER_UNAVAILABLE", "event store (Kafka) unavailable"
            ) from error
        self.ledger.confirm(domain, entity_id, ids)

    def close(self) -> None:
        self.producer.close()
        self.ledger.close()


class RateLimiter:
    """Per-entity events/second (sliding window), shared by every method of a replica."""

    def __init__(self, events_per_second: int) -> None:
        self._item = RateLimitItemPerSecond(events_per_second) if events_per_second else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def allow(self, entity_id: str, events: int) -> bool:
        if self._item is None or events == 0:
            return True
        return self._limiter.hit(self._item, entity_id, cost=events)


class PushKit:
    """The shared parts of one push service: credentials, limits, metrics and where accepted
    items are stored (``sink``: Kafka with the event-id ledger, or a service's own store)."""

    def __init__(
        self, limits: PushLimits, tokens: TokenStore, sink: ItemSink, metrics: PushMetrics
    ) -> None:
        self.limits = limits
        self.tokens = tokens
        self.sink = sink
        self.metrics = metrics
        self.rate = RateLimiter(limits.rate_limit_events_per_s)

    def endpoint(self, declaration: PushDeclaration[E]) -> PushEndpoint[E]:
        return PushEndpoint(self, declaration)

    def close(self) -> None:
        self.sink.close()


class PushEndpoint(Generic[E]):
    """One push method running the kit's steps; the servicer method calls ``push``."""

    def __init__(self, kit: PushKit, declaration: PushDeclaration[E]) -> None:
        self._kit = kit
        self._declaration = declaration
        self._domain = declaration.domain.name
        self._method = declaration.method
        self._sink = kit.sink

    def push(self, events: Sequence[E], context: grpc.ServicerContext) -> common_pb2.PushResult:
        return to_result(self.sort(events, context))

    def sort(self, events: Sequence[E], context: grpc.ServicerContext) -> Outcome:
        """Run the kit's steps on one call; how every item ended (``push`` answers it)."""
        metrics = self._kit.metrics
        in_flight = metrics.in_flight.labels(method=self._method)
        in_flight.inc()
        try:
            with metrics.batch_seconds.labels(method=self._method).time():
                return self._push(events, context)
        finally:
            in_flight.dec()

    def _push(self, events: Sequence[E], context: grpc.ServicerContext) -> Outcome:
        principal = authenticate(context, self._kit.tokens, self._kit.metrics.auth_failures)
        self._authorize(principal, context)
        self._check_size_and_rate(principal, len(events), context)
        outcome = self._validate(events, principal)
        if events and outcome.foreign_items == len(events):
            self._deny(
                context,
                "ERROR_REASON_FOREIGN_ENTITY",
                f"every event belongs to another entity than {principal.entity_id!r}",
            )
        self._first_copies(outcome)
        self._store(outcome, principal.entity_id, context)
        self._count(outcome, principal.entity_id)
        return outcome

    def _authorize(self, principal: Principal, context: grpc.ServicerContext) -> None:
        # Items are checked one by one against the caller's entity (check_entity); here: may
        # this credential write events at all?
        denial = authorize(principal, Access.WRITE_EVENTS, principal.entity_id)
        if denial is not None:
            self._deny(
                context, denial.value, denial_message(principal, Access.WRITE_EVENTS, denial)
            )

    def _deny(self, context: grpc.ServicerContext, reason: str, message: str) -> None:
        self._kit.metrics.denied.labels(reason=reason).inc()
        abort_with(context, grpc.StatusCode.PERMISSION_DENIED, reason, message)

    def _check_size_and_rate(
        self, principal: Principal, count: int, context: grpc.ServicerContext
    ) -> None:
        limits = self._kit.limits
        if count > limits.max_batch:
            abort_with(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "ERROR_REASON_BATCH_TOO_LARGE",
                f"events: batch of {count} exceeds the limit of {limits.max_batch} per call",
            )
        if not self._kit.rate.allow(principal.entity_id, count):
            self._kit.metrics.rate_limited.labels(entity=principal.entity_id).inc()
            abort_with(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "ERROR_REASON_RATE_LIMITED",
                f"rate limit of {limits.rate_limit_events_per_s} events/s for "
                f"{principal.entity_id} exceeded; nothing was stored "
                f"(retry after {limits.retry_after_s:g} s)",
                retry_after_s=limits.retry_after_s,
            )

    def _validate(self, events: Sequence[E], principal: Principal) -> Outcome:
        limits = self._kit.limits
        item = ItemContext(
            principal.entity_id,
            TimeWindow(time.time(), limits.future_skew_s, limits.max_age_days * 86_400),
        )
        validate = self._declaration.validate
        outcome = Outcome()
        for index, event in enumerate(events):
            event_id = _ids(event)[0]
            errors = item_errors(event, validate, item)
            if not errors:
                outcome.accepted.append((index, event_id, event))
                continue
            if any(error.code == FOREIGN_ENTITY for error in errors):
                outcome.foreign_items += 1
            shown = clip(event_id, MAX_ID_LENGTH)
            outcome.refusals += [
                Refusal(index, shown, error.bounded()) for error in errors[:MAX_ERRORS_PER_ITEM]
            ]
        return outcome

    def _first_copies(self, outcome: Outcome) -> None:
        """Only the first valid copy of an id in the batch goes to the sink; the others are
        duplicates of it."""
        first: set[str] = set()
        candidates = []
        for index, event_id, event in outcome.accepted:
            if event_id in first:
                outcome.duplicates.append(index)
            else:
                first.add(event_id)
                candidates.append((index, event_id, event))
        outcome.accepted = candidates

    def _store(self, outcome: Outcome, entity_id: str, context: grpc.ServicerContext) -> None:
        try:
            self._sink.store(self._domain, entity_id, outcome)
        except StoreUnavailable as error:
            abort_with(
                context,
                grpc.StatusCode.UNAVAILABLE,
                error.reason,
                f"{error.message}; nothing was stored, retry "
                f"(retry after {self._kit.limits.retry_after_s:g} s)",
                retry_after_s=self._kit.limits.retry_after_s,
            )
        outcome.duplicates.sort()
        outcome.refusals.sort(key=lambda refusal: refusal.index)

    def _count(self, outcome: Outcome, entity_id: str) -> None:
        metrics, domain = self._kit.metrics, self._domain
        if outcome.accepted:
            metrics.accepted.labels(entity=entity_id, domain=domain).inc(len(outcome.accepted))
        if outcome.duplicates:
            metrics.duplicates.labels(entity=entity_id, domain=domain).inc(len(outcome.duplicates))
        for refusal in outcome.refusals:
            code = common_pb2.RejectionCode.Name(refusal.error.code)
            metrics.rejected.labels(
                entity=entity_id, domain=domain, field=refusal.error.field, code=code
            ).inc()


def item_errors(event: E, validate: Validator[E], item: ItemContext) -> list[FieldError]:
    """Every problem of one item: its id and entity (the same for every domain), the domain's
    own rules, and any text holding a NUL character (no store keeps one)."""
    event_id, entity_id = _ids(event)
    errors = [
        *check_id(event_id, "event_id"),
        *check_entity(entity_id, item.entity_id),
        *validate(event, item),
    ]
    flagged = {error.field for error in errors}
    return errors + [
        FieldError(field, "contains a NUL character (U+0000)", INVALID_FORMAT)
        for field in nul_fields(event)
        if field not in flagged
    ]


def _ids(event: Message) -> tuple[str, str]:
    """(event_id, entity_id): every pushed message has both (checked in tests/unit)."""
    return str(getattr(event, "event_id")), str(getattr(event, "entity_id"))  # noqa: B009


def to_result(outcome: Outcome) -> common_pb2.PushResult:
    return common_pb2.PushResult(
        accepted=len(outcome.accepted),
        duplicate_indexes=outcome.duplicates,
        rejections=[
            common_pb2.ItemRejection(
                index=r.index,
                event_id=r.event_id,
                field=r.error.field,
                reason=r.error.reason,
                code=r.error.code,
            )
            for r in outcome.refusals
        ],
    )
