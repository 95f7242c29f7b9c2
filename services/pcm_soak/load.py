"""The sustained load: one thread per stream pushes its batches when they are due, through the
services' own Python clients (their retry rules are the kit's, ``pcm_common.push.client``), and
writes every attempt and every answer to the ledger.

A call the client gave up on (its retries exhausted while a service was killed or a store was
down) is sent again, the same ids, until it is answered: a lost answer never leaves an item's
fate unknown. Items still "in progress" after the client's own retries (a killed intake's
claims last a lease) are sent again later; intake streams carry on meanwhile. A resend of an id
waits until its first send was answered, so that "first content" is well defined.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import grpc
from google.protobuf.message import Message
from pcm.monitoring.v1 import common_pb2
from pcm_common.push.client import PushClient, push_call
from pcm_complaints.client import ComplaintsClient
from pcm_demo.platform import Layout
from pcm_indicators.client import IndicatorsClient
from pcm_intake.client import IntakeClient
from pcm_surveys.client import SurveysClient

from pcm_soak.ledger import Answer, Intent, Item, Ledger
from pcm_soak.workload import (
    ATTENTION,
    COMPLAINT,
    INDICATOR_VALUE,
    PROCEDURE_STAGE,
    SURVEY_COLLECTION,
    SURVEY_RESPONSE,
    Batch,
    Stream,
)

CALL_TIMEOUT_S = 20.0
RESEND_PAUSE_S = 1.0
"""Pause before sending again a call the client gave up on (its own backoff came before)."""
IN_PROGRESS_PAUSE_S = 3.0
# A restarted service is reached within half a second (gRPC's default backoff grows to 2 min).
RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# Status codes saying the call itself is wrong: sending it again cannot help.
FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.NOT_FOUND,
}
IN_PROGRESS = common_pb2.REJECTION_CODE_IN_PROGRESS
PAYLOAD_FIELDS = ("events", "values", "collections", "responses")
"""The repeated field of each push request (``*_service.proto``)."""

Listener = Callable[[Message, "grpc.StatusCode | None"], None]


class InFlight:
    """Calls under way per service, for the faults: a service is killed mid-call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._typical: dict[str, float] = {}

    def enter(self, service: str) -> None:
        with self._lock:
            self._calls[service] += 1

    def leave(self, service: str, took_s: float) -> None:
        with self._lock:
            self._calls[service] -= 1
            before = self._typical.get(service, took_s)
            self._typical[service] = 0.8 * before + 0.2 * took_s

    def busy(self, service: str) -> bool:
        with self._lock:
            return self._calls[service] > 0

    def typical_s(self, service: str) -> float:
        """How long a call to the service lasts lately (a moving average; 0: none yet)."""
        with self._lock:
            return self._typical.get(service, 0.0)


class _Recorded(PushClient):
    """The kit's client, retrying exactly as it does, with every attempt reported to
    ``listener`` (the request and its status: None when answered) and counted in ``in_flight``
    while under way, and a channel that reconnects quickly to a restarted service."""

    def __init__(
        self, service: str, target: str, token: str, listener: Listener, in_flight: InFlight
    ) -> None:
        super().__init__(target, token, timeout_s=CALL_TIMEOUT_S)
        self.channel.close()
        self.channel = grpc.insecure_channel(target, options=RECONNECT)
        self.stub = self.stub_type(self.channel)
        self._service = service
        self._listener = listener
        self._in_flight = in_flight

    def call(self, method: Any, request: Any) -> Any:
        listener, service, in_flight = self._listener, self._service, self._in_flight

        def attempt(sent: Any, **kwargs: Any) -> Any:
            in_flight.enter(service)
            began = time.monotonic()
            try:
                answer = method(sent, **kwargs)
            except grpc.RpcError as error:
                listener(sent, error.code())
                raise
            finally:
                in_flight.leave(service, time.monotonic() - began)
            listener(sent, None)
            return answer

        return super().call(attempt, request)


class IntakeRecorded(_Recorded, IntakeClient):
    pass


class ComplaintsRecorded(_Recorded, ComplaintsClient):
    pass


class IndicatorsRecorded(_Recorded, IndicatorsClient):
    pass


class SurveysRecorded(_Recorded, SurveysClient):
    pass


SERVICE_OF = {
    ATTENTION: "intake",
    PROCEDURE_STAGE: "intake",
    COMPLAINT: "complaints",
    INDICATOR_VALUE: "indicators",
    SURVEY_COLLECTION: "surveys",
    SURVEY_RESPONSE: "surveys",
}
CLIENT_OF: dict[str, type[_Recorded]] = {
    "intake": IntakeRecorded,
    "complaints": ComplaintsRecorded,
    "indicators": IndicatorsRecorded,
    "surveys": SurveysRecorded,
}


def push(client: PushClient, domain: str, messages: Sequence[Message]) -> common_pb2.PushResult:
    """The domain's push RPC on its service's client."""
    return push_call(client, domain)(messages)


def _payloads(request: Message) -> list[Message]:
    """The items of a push request (its one repeated field)."""
    for name in PAYLOAD_FIELDS:
        if name in request.DESCRIPTOR.fields_by_name:
            return list(getattr(request, name))
    return []


class Pusher:
    """One stream, pushed batch after batch when due."""

    def __init__(
        self,
        stream: Stream,
        ledger: Ledger,
        layout: Layout,
        tokens: Mapping[str, str],
        started: float,
        duration_s: float,
        deadline: float,
        answered: Callable[[int], None],
        in_flight: InFlight,
    ) -> None:
        self.stream = stream
        self._ledger = ledger
        self._layout = layout
        self._tokens = tokens
        self._started = started
        self._duration_s = duration_s
        self._deadline = deadline
        self._answered = answered
        self._in_flight = in_flight
        self._clients: dict[tuple[str, str], _Recorded] = {}
        self._current: dict[str, Item] = {}
        self._parked: list[tuple[float, Item]] = []
        self._twin: Pusher | None = None

    def run(self) -> None:
        try:
            for batch in self.stream.batches:
                self._until(self._started + batch.at * self._duration_s)
                racing = self._race(batch) if batch.twins else None
                ready = self._ready(batch.items)
                if ready:
                    self._send(batch.domain, batch.entity_id, ready)
                if racing is not None:
                    racing.join()
            while self._parked and time.monotonic() < self._deadline:
                self._until(min(due for due, _ in self._parked))
        finally:
            self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        if self._twin is not None:
            self._twin.close()

    def _race(self, batch: Batch) -> threading.Thread:
        """The batch's twins sent by a second pusher (its own clients and connections) at the
        same moment; it sends again what stays in progress itself, never parks."""
        if self._twin is None:
            self._twin = Pusher(
                replace(self.stream, parks_in_progress=False),
                self._ledger,
                self._layout,
                self._tokens,
                self._started,
                self._duration_s,
                self._deadline,
                self._answered,
                self._in_flight,
            )
        twin = self._twin
        racing = threading.Thread(
            target=twin._send, args=(batch.domain, batch.entity_id, batch.twins), daemon=True
        )
        racing.start()
        return racing

    # --- pacing and items sent again later ------------------------------------------------

    def _until(self, moment: float) -> None:
        """Wait for ``moment``, meanwhile sending again the parked items that are due."""
        while True:
            now = time.monotonic()
            self._retry_parked(now)
            if now >= moment or now >= self._deadline:
                return
            time.sleep(min(0.2, moment - now))

    def _ready(self, items: Sequence[Item]) -> list[Item]:
        """The items that may go now; a resend whose first send is not answered yet waits."""
        ready = []
        for item in items:
            if item.intent is Intent.RESEND and item.original and item.original.answer is None:
                self._parked.append((time.monotonic() + IN_PROGRESS_PAUSE_S, item))
            else:
                ready.append(item)
        return ready

    def _retry_parked(self, now: float) -> None:
        due = [item for at, item in self._parked if at <= now]
        if not due:
            return
        self._parked = [(at, item) for at, item in self._parked if at > now]
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in due:
            groups.setdefault((item.domain, item.entity_id), []).append(item)
        for (domain, entity_id), items in groups.items():
            ready = self._ready(items)
            if ready:
                self._send(domain, entity_id, ready)

    # --- one call, sent until answered ----------------------------------------------------

    def _client(self, domain: str, entity_id: str, renew: bool = False) -> _Recorded:
        service = SERVICE_OF[domain]
        key = (service, entity_id)
        client = self._clients.get(key)
        if client is not None and renew:
            client.close()
            client = None
        if client is None:
            client = CLIENT_OF[service](
                service,
                self._layout.target(service),
                self._tokens[entity_id],
                self._listen,
                self._in_flight,
            )
            self._clients[key] = client
        return client

    def _listen(self, request: Message, status: grpc.StatusCode | None) -> None:
        items = [
            self._current[str(getattr(p, "event_id"))]  # noqa: B009
            for p in _payloads(request)
            if str(getattr(p, "event_id")) in self._current  # noqa: B009
        ]
        domain = items[0].domain if items else self.stream.name
        self._ledger.attempted(domain, items, None if status is None else status.name)

    def _send(self, domain: str, entity_id: str, items: list[Item]) -> None:
        pending = items
        renew = False
        while pending and time.monotonic() < self._deadline:
            client = self._client(domain, entity_id, renew)
            self._current = {item.event_id: item for item in pending}
            try:
                result = push(client, domain, [item.message for item in pending])
            except grpc.RpcError as error:
                code = error.code()
                if code in FATAL:
                    for item in pending:
                        self._ledger.answered(item, Answer.REFUSED, f"CALL_{code.name}")
                    self._answered(len(pending))
                    return
                self._ledger.gave_up(domain)
                renew = True
                time.sleep(RESEND_PAUSE_S)
                continue
            renew = False
            pending = self._apply(pending, result)
            if pending:
                self._ledger.still_in_progress(domain, len(pending))
                if self.stream.parks_in_progress:
                    later = time.monotonic() + IN_PROGRESS_PAUSE_S
                    self._parked.extend((later, item) for item in pending)
                    return
                time.sleep(IN_PROGRESS_PAUSE_S)

    def _apply(self, items: list[Item], result: common_pb2.PushResult) -> list[Item]:
        """Record the answer of each item; the items still in progress."""
        duplicates = set(result.duplicate_indexes)
        refused = {r.index: r.code for r in result.rejections}
        pending = []
        for index, item in enumerate(items):
            if index in refused:
                if refused[index] == IN_PROGRESS:
                    pending.append(item)
                    continue
                code = common_pb2.RejectionCode.Name(refused[index]).removeprefix("REJECTION_CODE_")
                self._ledger.answered(item, Answer.REFUSED, code)
            elif index in duplicates:
                self._ledger.answered(item, Answer.DUPLICATE)
            else:
                self._ledger.answered(item, Answer.ACCEPTED)
        self._answered(len(items) - len(pending))
        return pending


class Load:
    """Every stream's pusher in its own thread."""

    def __init__(
        self,
        streams: Sequence[Stream],
        ledger: Ledger,
        layout: Layout,
        tokens: Mapping[str, str],
        duration_s: float,
        deadline_s: float,
        answered: Callable[[int], None],
    ) -> None:
        for stream in streams:
            ledger.add(item for batch in stream.batches for item in batch.all_items)
        self.started = time.monotonic()
        self.errors: list[str] = []
        self.in_flight = InFlight()
        deadline = self.started + deadline_s
        self._pushers = [
            Pusher(
                s,
                ledger,
                layout,
                tokens,
                self.started,
                duration_s,
                deadline,
                answered,
                self.in_flight,
            )
            for s in streams
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(p,), name=f"load-{p.stream.name}", daemon=True)
            for p in self._pushers
        ]
        self.finished: dict[str, float] = {}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, pusher: Pusher) -> None:
        try:
            pusher.run()
        except Exception:  # reported with the results: the soak fails, never silently
            self.errors.append(f"{pusher.stream.name}: {traceback.format_exc()}")
        finally:
            self.finished[pusher.stream.name] = time.monotonic() - self.started

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.running()
