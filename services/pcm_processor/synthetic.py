"""Synthetic but plausible event streams for tests and the benchmark (entities, services and
channels from the catalogues; tickets issued, called, then served or abandoned; procedures filed,
sometimes observed and resubmitted, then resolved).

Events come out in time order, as a real stream roughly does. The generator is deterministic for
a seed, so a failing test can be replayed.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, envelope_pb2, procedure_pb2
from pcm_common.catalogues import Catalogues, Entity, Service, ServiceKind
from pcm_common.kafka.envelope import wrap

Kind = attention_pb2.AttentionEventKind
Stage = procedure_pb2.ProcedureStage


@dataclass(frozen=True)
class Produced:
    """One event ready for Kafka: key, serialized envelope and occurrence time."""

    key: bytes
    value: bytes
    time: int
    envelope: envelope_pb2.EventEnvelope


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def local_time(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: str = "America/Lima"
) -> int:
    """Unix seconds of a wall-clock time in ``zone`` (tests write times as people read them)."""
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp())


def attention_event(
    entity_id: str,
    ticket_id: str,
    kind: str,
    service_id: str,
    channel: str,
    issued: int,
    called: int = 0,
    finished: int = 0,
    preferential: bool = False,
    event_id: str | None = None,
) -> envelope_pb2.EventEnvelope:
    """One attention event in its envelope; ``kind`` as in the catalogue (TICKET_SERVED)."""
    event = attention_pb2.AttentionEvent(
        event_id=event_id or f"{ticket_id}-{kind}",
        entity_id=entity_id,
        ticket_id=ticket_id,
        kind=attention_pb2.AttentionEventKind.Value(f"ATTENTION_EVENT_KIND_{kind}"),
        channel=channel,
        service_id=service_id,
        preferential=preferential,
        issued_at=_ts(issued),
    )
    if called:
        event.called_at.CopyFrom(_ts(called))
    if finished:
        event.finished_at.CopyFrom(_ts(finished))
    return wrap(event, entity_id, _ts(max(issued, called, finished)))


def procedure_event(
    entity_id: str,
    procedure_id: str,
    stage: str,
    service_id: str,
    channel: str,
    filed: int,
    occurred: int,
    sequence: int = 1,
    event_id: str | None = None,
) -> envelope_pb2.EventEnvelope:
    """One procedure stage in its envelope; ``stage`` as in the catalogue (RESOLVED)."""
    event = procedure_pb2.ProcedureStageEvent(
        event_id=event_id or f"{procedure_id}-{stage}-{sequence}",
        entity_id=entity_id,
        procedure_id=procedure_id,
        service_id=service_id,
        stage=procedure_pb2.ProcedureStage.Value(f"PROCEDURE_STAGE_{stage}"),
        channel=channel,
        filed_at=_ts(filed),
        occurred_at=_ts(occurred),
        sequence=sequence,
    )
    return wrap(event, entity_id, _ts(occurred))


class SyntheticStream:
    def __init__(
        self, catalogues: Catalogues, seed: int, entities: int | None = None, run_id: str = "s"
    ) -> None:
        self._rng = random.Random(seed)
        self._run = run_id
        chosen: Sequence[Entity] = catalogues.entities
        if entities is not None:
            chosen = self._rng.sample(list(catalogues.entities), entities)
        self.entities = tuple(chosen)
        self._attention: dict[str, list[Service]] = {}
        self._procedures: dict[str, list[Service]] = {}
        for entity in self.entities:
            offered = catalogues.services_for(entity.entity_id)
            self._attention[entity.entity_id] = [
                s for s in offered if s.target_wait_minutes is not None
            ]
            self._procedures[entity.entity_id] = [
                s
                for s in offered
                if s.kind is ServiceKind.TRAMITE and s.legal_term_business_days is not None
            ]
        self._serial = 0

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._run}-{self._serial}"

    def _channel(self, entity: Entity, service: Service) -> str:
        usable = [c for c in entity.channels if c in service.channels] or list(entity.channels)
        return self._rng.choice(usable)

    def _envelope(
        self,
        payload: attention_pb2.AttentionEvent | procedure_pb2.ProcedureStageEvent,
        entity_id: str,
        at: int,
    ) -> Produced:
        envelope = wrap(payload, entity_id, _ts(at))
        return Produced(entity_id.encode(), envelope.SerializeToString(), at, envelope)

    def ticket(self, issued: int) -> list[Produced]:
        """Issued, called and served (or abandoned) events of one ticket."""
        rng = self._rng
        entity = rng.choice(self.entities)
        service = rng.choice(self._attention[entity.entity_id])
        base = attention_pb2.AttentionEvent(
            entity_id=entity.entity_id,
            ticket_id=self._next_id("T"),
            channel=self._channel(entity, service),
            service_id=service.service_id,
            office_id=f"OF-{rng.randint(1, 4)}",
            preferential=rng.random() < 0.12,
            issued_at=_ts(issued),
        )
        called = issued + rng.randint(30, 3_000)
        finished = called + rng.randint(60, 1_500)
        steps: list[
            tuple[attention_pb2.AttentionEventKind.ValueType, int, dict[str, Timestamp]]
        ] = [(Kind.ATTENTION_EVENT_KIND_TICKET_ISSUED, issued, {})]
        if rng.random() < 0.1:  # gave up waiting: never called
            steps.append(
                (Kind.ATTENTION_EVENT_KIND_TICKET_ABANDONED, called, {"finished_at": _ts(called)})
            )
        else:
            steps.append(
                (Kind.ATTENTION_EVENT_KIND_TICKET_CALLED, called, {"called_at": _ts(called)})
            )
            steps.append(
                (
                    Kind.ATTENTION_EVENT_KIND_TICKET_SERVED,
                    finished,
                    {"called_at": _ts(called), "finished_at": _ts(finished)},
                )
            )
        produced = []
        for kind, at, times in steps:
            event = attention_pb2.AttentionEvent()
            event.CopyFrom(base)
            event.event_id = self._next_id("A")
            event.kind = kind
            for name, stamp in times.items():
                getattr(event, name).CopyFrom(stamp)
            produced.append(self._envelope(event, entity.entity_id, at))
        return produced

    def procedure(self, filed: int) -> list[Produced]:
        """Stages of one procedure, from filing to resolution (a third are observed once)."""
        rng = self._rng
        entity = rng.choice([e for e in self.entities if self._procedures[e.entity_id]])
        service = rng.choice(self._procedures[entity.entity_id])
        stages = [Stage.PROCEDURE_STAGE_FILED, Stage.PROCEDURE_STAGE_ASSIGNED]
        if rng.random() < 0.33:
            stages += [Stage.PROCEDURE_STAGE_OBSERVED, Stage.PROCEDURE_STAGE_RESUBMITTED]
        stages.append(Stage.PROCEDURE_STAGE_RESOLVED)
        procedure_id = self._next_id("EXP")
        channel = self._channel(entity, service)
        produced = []
        at = filed
        for sequence, stage in enumerate(stages, start=1):
            event = procedure_pb2.ProcedureStageEvent(
                event_id=self._next_id("P"),
                entity_id=entity.entity_id,
                procedure_id=procedure_id,
                service_id=service.service_id,
                stage=stage,
                channel=channel,
                filed_at=_ts(filed),
                occurred_at=_ts(at),
                unit_id=f"U-{rng.randint(1, 3)}",
                sequence=sequence,
            )
            produced.append(self._envelope(event, entity.entity_id, at))
            at += rng.randint(600, 4 * 86_400)
        return produced

    def attention_stream(self, tickets: int, start: int, span_s: int) -> list[Produced]:
        starts = sorted(start + self._rng.randrange(span_s) for _ in range(tickets))
        return sorted((p for s in starts for p in self.ticket(s)), key=lambda p: p.time)

    def procedure_stream(self, procedures: int, start: int, span_s: int) -> list[Produced]:
        starts = sorted(start + self._rng.randrange(span_s) for _ in range(procedures))
        return sorted((p for s in starts for p in self.procedure(s)), key=lambda p: p.time)


def interleave(*streams: Sequence[Produced]) -> Iterator[Produced]:
    """Merge time-ordered streams into one time-ordered stream."""
    yield from heapq.merge(*streams, key=lambda p: p.time)
