"""A realistic synthetic national dataset, generated from the catalogues (pure, seeded).

Each entity gets a daily volume from its peer group, a channel mix from the channels it
offers, and a "quality" factor that stretches its waiting times, so rankings have something to
show. Tickets follow the real lifecycle (issued → called → served, or issued → abandoned) in
office hours on business days; some procedures (TUPA) are filed and move through their stages,
a few observed and resubmitted, most resolved within their legal term, some late.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import attention_pb2, procedure_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Entity, Service

LIMA = ZoneInfo("America/Lima")
# Tickets per business day for an entity of each peer group (before --scale).
DAILY_VOLUME = {
    "ORGANISMO_NACIONAL_ALTA_DEMANDA": 900,
    "ORGANISMO_REGULADOR": 120,
    "MINISTERIO": 150,
    "GOBIERNO_REGIONAL": 200,
    "MUNICIPALIDAD_PROVINCIAL": 260,
    "MUNICIPALIDAD_DISTRITAL": 110,
}
CHANNEL_WEIGHT = {"PRESENCIAL": 0.55, "VIRTUAL": 0.28, "TELEFONICO": 0.12, "MOVIL": 0.05}
# Remote channels queue less: a call-back or a chat waits a fraction of a counter's line.
CHANNEL_WAIT_FACTOR = {"PRESENCIAL": 1.0, "MOVIL": 1.2, "TELEFONICO": 0.35, "VIRTUAL": 0.25}
OPENING, CLOSING = time(8, 30), time(16, 30)

Kind = attention_pb2.AttentionEventKind
Stage = procedure_pb2.ProcedureStage


@dataclass
class Dataset:
    attentions: dict[str, list[attention_pb2.AttentionEvent]] = field(default_factory=dict)
    procedures: dict[str, list[procedure_pb2.ProcedureStageEvent]] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(map(len, self.attentions.values())) + sum(map(len, self.procedures.values()))


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


class Generator:
    def __init__(self, catalogues: Catalogues, now: datetime, seed: int, scale: float) -> None:
        self._catalogues = catalogues
        self._now = now
        self._random = random.Random(seed)
        self._scale = scale

    def dataset(self, days: int) -> Dataset:
        data = Dataset()
        business_days = self._recent_business_days(days)
        for entity in self._catalogues.entities:
            quality = self._random.uniform(0.55, 1.6)  # >1 = slower than its targets
            attentions, procedures = [], []
            for day in business_days:
                for ticket in self._day_of_tickets(entity, day, quality):
                    attentions += ticket
                procedures += self._procedures(entity, day, quality)
            data.attentions[entity.entity_id] = attentions
            data.procedures[entity.entity_id] = procedures
        return data

    def _recent_business_days(self, days: int) -> list[date]:
        calendar, day = self._catalogues.calendar, self._now.astimezone(LIMA).date()
        found: list[date] = []
        while len(found) < days:
            if calendar.is_business_day(day):
                found.append(day)
            day -= timedelta(days=1)
        return sorted(found)

    def _day_of_tickets(
        self, entity: Entity, day: date, quality: float
    ) -> Iterator[list[attention_pb2.AttentionEvent]]:
        volume = int(DAILY_VOLUME.get(entity.peer_group, 100) * self._scale)
        services = self._catalogues.services_for(entity.entity_id)
        for number in range(volume):
            channel = self._channel(entity)
            offered = [s for s in services if channel in s.channels] or list(services)
            service = self._random.choice(offered)
            issued = self._moment(day)
            if issued >= self._now:
                continue
            yield self._ticket(entity, service, channel, issued, quality, f"{day:%Y%m%d}-{number}")

    def _channel(self, entity: Entity) -> str:
        channels = list(entity.channels)
        weights = [CHANNEL_WEIGHT.get(c, 0.05) for c in channels]
        return self._random.choices(channels, weights)[0]

    def _moment(self, day: date) -> datetime:
        start = datetime.combine(day, OPENING, LIMA)
        seconds = (datetime.combine(day, CLOSING, LIMA) - start).total_seconds()
        return start + timedelta(seconds=self._random.uniform(0, seconds))

    def _ticket(
        self,
        entity: Entity,
        service: Service,
        channel: str,
        issued: datetime,
        quality: float,
        ticket_id: str,
    ) -> list[attention_pb2.AttentionEvent]:
        target_wait = (service.target_wait_minutes or 15) * 60
        mean_wait = target_wait * quality * CHANNEL_WAIT_FACTOR.get(channel, 1.0) * 0.8
        wait = self._random.lognormvariate(0, 0.6) * mean_wait
        preferential = self._random.random() < 0.08
        if preferential:
            wait *= 0.4  # preferential lines are served first
        base = attention_pb2.AttentionEvent(
            entity_id=entity.entity_id,
            ticket_id=ticket_id,
            channel=channel,
            service_id=service.service_id,
            office_id=f"{entity.region}-SEDE-{ticket_id[-1]}",
            preferential=preferential,
            preferential_reason=(
                attention_pb2.PREFERENTIAL_REASON_OLDER_ADULT
                if preferential
                else attention_pb2.PREFERENTIAL_REASON_UNSPECIFIED
            ),
            issued_at=stamp(issued),
        )
        events = [self._event(base, Kind.ATTENTION_EVENT_KIND_TICKET_ISSUED)]
        if self._random.random() < min(0.35, wait / (target_wait * 8)):
            gave_up = issued + timedelta(seconds=wait * 0.7)
            if gave_up < self._now:
                events.append(
                    self._event(
                        base, Kind.ATTENTION_EVENT_KIND_TICKET_ABANDONED, finished_at=gave_up
                    )
                )
            return events
        called = issued + timedelta(seconds=wait)
        if called >= self._now:
            return events
        events.append(self._event(base, Kind.ATTENTION_EVENT_KIND_TICKET_CALLED, called_at=called))
        service_time = (
            self._random.lognormvariate(0, 0.4) * (service.target_service_minutes or 8) * 60
        )
        served = called + timedelta(seconds=service_time)
        if served < self._now:
            events.append(
                self._event(
                    base,
                    Kind.ATTENTION_EVENT_KIND_TICKET_SERVED,
                    called_at=called,
                    finished_at=served,
                )
            )
        return events

    def _event(
        self,
        base: attention_pb2.AttentionEvent,
        kind: int,
        called_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> attention_pb2.AttentionEvent:
        event = attention_pb2.AttentionEvent()
        event.CopyFrom(base)
        event.event_id = uuid.UUID(int=self._random.getrandbits(128)).hex
        event.kind = kind  # type: ignore[assignment]
        if called_at is not None:
            event.called_at.CopyFrom(stamp(called_at))
        if finished_at is not None:
            event.finished_at.CopyFrom(stamp(finished_at))
        return event

    def _procedures(
        self, entity: Entity, day: date, quality: float
    ) -> list[procedure_pb2.ProcedureStageEvent]:
        """Procedures *resolved* on `day`, filed as many business days earlier as they took, so
        the legal-term KPI sees late ones too (a slow entity misses more terms)."""
        tramites = [
            s for s in self._catalogues.services_for(entity.entity_id) if s.kind == "TRAMITE"
        ]
        if not tramites:
            return []
        count = int(DAILY_VOLUME.get(entity.peer_group, 100) * self._scale * 0.15)
        events: list[procedure_pb2.ProcedureStageEvent] = []
        for number in range(count):
            service = self._random.choice(tramites)
            procedure_id = f"EXP-{entity.entity_id}-{day:%Y%m%d}-{number:05d}"
            events += self._procedure_stages(entity, service, procedure_id, day, quality)
        return events

    def _business_days_before(self, day: date, count: int) -> date:
        calendar = self._catalogues.calendar
        while count > 0:
            day -= timedelta(days=1)
            count -= calendar.is_business_day(day)
        return day

    def _procedure_stages(
        self, entity: Entity, service: Service, procedure_id: str, day: date, quality: float
    ) -> list[procedure_pb2.ProcedureStageEvent]:
        term = service.legal_term_business_days or 30
        taken = max(1, round(term * quality * self._random.uniform(0.3, 1.1)))
        filed = self._moment(self._business_days_before(day, taken))
        stages = [(Stage.PROCEDURE_STAGE_FILED, filed)]
        stages.append((Stage.PROCEDURE_STAGE_ASSIGNED, filed + timedelta(hours=3)))
        if self._random.random() < 0.15:
            stages.append((Stage.PROCEDURE_STAGE_OBSERVED, filed + timedelta(hours=20)))
            stages.append((Stage.PROCEDURE_STAGE_RESUBMITTED, filed + timedelta(hours=22)))
        resolved = datetime.combine(day, time(11, 0), LIMA)
        stages.append((Stage.PROCEDURE_STAGE_RESOLVED, max(resolved, filed + timedelta(days=1))))
        channel = "VIRTUAL" if "VIRTUAL" in service.channels else service.channels[0]
        return [
            procedure_pb2.ProcedureStageEvent(
                event_id=uuid.UUID(int=self._random.getrandbits(128)).hex,
                entity_id=entity.entity_id,
                procedure_id=procedure_id,
                service_id=service.service_id,
                stage=stage,
                channel=channel,
                filed_at=stamp(filed),
                occurred_at=stamp(moment),
                sequence=sequence,
                unit_id="UNIDAD-TRAMITE",
            )
            for sequence, (stage, moment) in enumerate(stages, start=1)
            if moment < self._now
        ]
