"""The one synthetic generator: plausible activity of catalogue entities, deterministic for a seed.

One model of how entities work, two outputs:

- ``Generator.dataset``: a national dataset for the demo, pushed through the public API — every
  entity's business days, a daily volume from its peer group, office hours, and events that have
  not happened yet (after ``now``) left out;
- ``Generator.stream``: time-ordered envelopes ready for Kafka, for the processor tests and the
  benchmark — subjects started at random moments of a window, in the order a real topic sees them.

The model: each entity has a "quality" factor (>1: slower than its targets) that stretches its
waits and procedure times, so rankings have something to show. A ticket is issued, then called
and served (or abandoned, more often when the wait is long) on a channel the entity offers;
remote channels queue less. A TUPA procedure is filed, assigned, sometimes observed and
resubmitted, and resolved after a number of business days around its legal term (a slow entity
misses more terms).

Same seed, same catalogues, same calls: same events, so a failing test can be replayed. Ids carry
``run_id`` so that runs sharing a topic or database never collide.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from pcm.monitoring.v1 import (
    attention_pb2,
    complaint_pb2,
    envelope_pb2,
    indicator_pb2,
    procedure_pb2,
    survey_pb2,
)
from pcm_common import domains
from pcm_common.catalogues import Catalogues, Entity, Service, ServiceKind
from pcm_common.kafka.envelope import occurrence_time

from pcm_testkit import events

LIMA = ZoneInfo("America/Lima")
# Tickets per business day for an entity of each peer group (before the dataset's scale).
DAILY_VOLUME = {
    "ORGANISMO_NACIONAL_ALTA_DEMANDA": 900,
    "ORGANISMO_REGULADOR": 120,
    "MINISTERIO": 150,
    "GOBIERNO_REGIONAL": 200,
    "MUNICIPALIDAD_METROPOLITANA_LIMA": 300,
    "MUNICIPALIDAD_TIPO_A": 260,
    "MUNICIPALIDAD_TIPO_B": 110,
}
PROCEDURES_PER_TICKET = 0.15
COMPLAINTS_PER_TICKET = 0.004
# What becomes of a complaint besides an answer (DS 007-2020-PCM): shares of all complaints.
COMPLAINT_ENDINGS = {"NOT_A_RECLAMO": 0.05, "TRANSFERRED": 0.02, "WITHDRAWN": 0.02}
RESOLVED_AT_DESK_SHARE = 0.06
COMPLAINT_DAYS = 60
"""Calendar days of complaints in the demo dataset: enough for terms to fall due."""
CHANNEL_WEIGHT = {"PRESENCIAL": 0.55, "VIRTUAL": 0.28, "TELEFONICO": 0.12, "MOVIL": 0.05}
# Remote channels queue less: a call-back or a chat waits a fraction of a counter's line.
CHANNEL_WAIT_FACTOR = {"PRESENCIAL": 1.0, "MOVIL": 1.2, "TELEFONICO": 0.35, "VIRTUAL": 0.25}
OPENING, CLOSING = dt.time(8, 30), dt.time(16, 30)
RESOLUTION_TIME = dt.time(11, 0)
HOUR = 3600
COMPLAINT_DRIVERS = ("TIEMPO", "TRATO_PROFESIONAL", "INFORMACION", "RESULTADO", "ACCESIBILIDAD")

ATTENTION, PROCEDURE_STAGE = domains.ATTENTION.name, domains.PROCEDURE_STAGE.name
COMPLAINT = domains.COMPLAINT.name
INDICATOR_VALUE = domains.INDICATOR_VALUE.name
SURVEY_COLLECTION = domains.SURVEY_COLLECTION.name
SURVEY_RESPONSE = domains.SURVEY_RESPONSE.name
SURVEY_OFFERED_SHARE = 0.25
SURVEY_RESPONSE_RATE = 0.35
CORRECTED_SHARE = 0.1
"""Share of indicator reports sent again corrected (the first one stays in the history)."""
Kind = attention_pb2.AttentionEventKind
Stage = procedure_pb2.ProcedureStage


@dataclass(frozen=True)
class Produced:
    """One event ready for Kafka: key, serialized envelope and occurrence time."""

    key: bytes
    value: bytes
    time: int
    envelope: envelope_pb2.EventEnvelope

    @classmethod
    def of(cls, payload: Message) -> Produced:
        envelope = events.enveloped(payload)
        return cls(
            envelope.entity_id.encode(),
            envelope.SerializeToString(),
            envelope.time.seconds,
            envelope,
        )


@dataclass
class Dataset:
    """Payloads per domain name, then per entity, in the order each entity pushes them."""

    events: dict[str, dict[str, list[Message]]] = field(default_factory=dict)

    def of(self, domain: str) -> dict[str, list[Message]]:
        return self.events.setdefault(domain, {})

    @property
    def total(self) -> int:
        return sum(
            len(items) for per_entity in self.events.values() for items in per_entity.values()
        )


@dataclass(frozen=True)
class Profile:
    """How one entity behaves: its volume, its quality and what it offers."""

    entity: Entity
    quality: float
    daily_tickets: int
    attention_services: tuple[Service, ...]
    procedure_services: tuple[Service, ...]

    @property
    def entity_id(self) -> str:
        return self.entity.entity_id

    def offers(self, domain: str) -> bool:
        """Whether the entity has services this domain's events can be about."""
        services = self.procedure_services if domain == PROCEDURE_STAGE else self.attention_services
        return bool(services)


@dataclass(frozen=True)
class _Step:
    stage: str
    at: int


class Generator:
    """Seeded activity of catalogue entities: ``dataset`` for the demo, ``stream`` for Kafka."""

    def __init__(
        self,
        catalogues: Catalogues,
        seed: int,
        entities: int | None = None,
        run_id: str | None = None,
    ) -> None:
        """``entities``: a seeded sample of that many catalogue entities (default: all)."""
        self._rng = random.Random(seed)
        self._catalogues = catalogues
        self._run = run_id if run_id is not None else f"s{seed}"
        self._serial = 0
        chosen: Sequence[Entity] = catalogues.entities
        if entities is not None:
            chosen = self._rng.sample(list(catalogues.entities), entities)
        self.profiles = tuple(self._profile(entity) for entity in chosen)
        # What one subject (a ticket, a procedure) started at a moment gives, per domain.
        self._subjects: dict[str, Callable[[Profile, int], list[Message]]] = {
            ATTENTION: self._ticket,
            PROCEDURE_STAGE: self._procedure_filed_at,
            # As the complaints service publishes them: with due dates and OVERDUE events.
            COMPLAINT: lambda profile, filed: self._complaint(profile, filed, published=True),
            SURVEY_COLLECTION: self._collection_ending,
            SURVEY_RESPONSE: self._response_at,
        }

    def _profile(self, entity: Entity) -> Profile:
        offered = self._catalogues.services_for(entity.entity_id)
        return Profile(
            entity=entity,
            quality=self._rng.uniform(0.55, 1.6),
            daily_tickets=DAILY_VOLUME.get(entity.peer_group, 100),
            attention_services=tuple(s for s in offered if s.target_wait_minutes is not None),
            procedure_services=tuple(s for s in offered if s.kind is ServiceKind.TRAMITE),
        )

    @property
    def domains(self) -> tuple[str, ...]:
        """Domains this generator simulates."""
        return tuple(self._subjects)

    # Output 1: the national dataset, pushed through the API by the demo.

    def dataset(self, days: int, now: dt.datetime, scale: float) -> Dataset:
        """The last ``days`` complete business days before ``now``'s date, plus today's so far,
        for every entity, ``scale`` times the peer-group volume; only what has happened by
        ``now``. A report on the newest complete day then always has one, at any hour."""
        data = Dataset()
        business_days = self._recent_business_days(days, now)
        cutoff = int(now.timestamp())
        for profile in self.profiles:
            for day in business_days:
                self._business_day(data, profile, day, scale, cutoff)
            self._complaints(data, profile, now, scale, cutoff)
            data.of(INDICATOR_VALUE)[profile.entity_id] = self._indicators(profile, now)
            # One collection per calendar month, as entities run them: a month's satisfaction
            # rests on that month's collection.
            collections, responses = [], []
            for month_days in _by_month(business_days):
                collection, answered = self._survey(profile, month_days, scale, cutoff)
                collections.append(collection)
                responses.extend(answered)
            data.of(SURVEY_COLLECTION)[profile.entity_id] = collections
            data.of(SURVEY_RESPONSE)[profile.entity_id] = responses
        return data

    def _collection_ending(self, profile: Profile, end: int) -> list[Message]:
        """A week's collection ending at ``end`` (as the surveys service publishes it)."""
        interactions = self._rng.randint(50, 2_000)
        offered = int(interactions * self._rng.uniform(0.1, 0.4))
        return [
            events.survey_collection(
                profile.entity_id,
                event_id=self._next_id("S"),
                collection_id=self._next_id(f"ENC-{profile.entity_id}"),
                service_id=profile.attention_services[0].service_id,
                channel=self._channel(profile.entity),
                period_start=end - 7 * 86_400,
                period_end=end,
                interactions=interactions,
                offered=offered,
                responses=int(offered * self._rng.uniform(0.1, 0.6)),
            )
        ]

    def _survey(
        self, profile: Profile, days: list[dt.date], scale: float, cutoff: int
    ) -> tuple[Message, list[Message]]:
        """One collection over the dataset's days at the counters, and its responses: scores
        fall as the entity's waits grow (its quality factor), time most of all."""
        rng = self._rng
        interactions = max(10, int(profile.daily_tickets * scale * len(days)))
        offered = max(4, int(interactions * SURVEY_OFFERED_SHARE))
        start = int(dt.datetime.combine(days[0], OPENING, LIMA).timestamp())
        end = min(int(dt.datetime.combine(days[-1], CLOSING, LIMA).timestamp()), cutoff - 60)
        service = profile.attention_services[0].service_id if profile.attention_services else ""
        collection = events.survey_collection(
            profile.entity_id,
            event_id=self._next_id("S"),
            collection_id=self._next_id(f"ENC-{profile.entity_id}"),
            service_id=service,
            period_start=start,
            period_end=end,
            interactions=interactions,
            offered=offered,
            responses=int(offered * SURVEY_RESPONSE_RATE),
        )
        responses = [
            self._response(profile, collection.collection_id, rng.randint(start, end))
            for _ in range(collection.responses)
        ]
        return collection, responses

    def _response(self, profile: Profile, collection_id: str, answered_at: int) -> Message:
        """One person's answers: scores fall as the entity's waits grow (its quality factor),
        time most of all; a few questions skipped, not applicable or not asked, and the overall
        question near the drivers' mean."""
        scores = []
        for driver in self._catalogues.drivers:
            weight = 1.6 if driver.code == "TIEMPO" else 1.0
            mean = 4.6 - (profile.quality - 0.55) * 1.5 * weight
            scores.append(self._answer(driver.code, mean))
        overall_mean = 4.6 - (profile.quality - 0.55) * 1.5 * 1.1
        service = profile.attention_services[0] if profile.attention_services else None
        return events.survey_response(
            profile.entity_id,
            event_id=self._next_id("R"),
            collection_id=collection_id,
            response_id=self._next_id("RESP"),
            service_id=service.service_id if service else "",
            channel=self._channel(profile.entity),
            answered_at=answered_at,
            scores=[score for score in scores if score is not None],
            overall=self._answer("", overall_mean),
        )

    def _answer(self, driver: str, mean: float) -> survey_pb2.DriverScore | None:
        """A scale answer around ``mean``; sometimes one of the ways of not answering (None:
        the questionnaire did not ask it)."""
        draw = self._rng.random()
        if draw < 0.03:
            return None
        if draw < 0.06:
            return survey_pb2.DriverScore(driver=driver, status=survey_pb2.ANSWER_STATUS_SKIPPED)
        if draw < 0.08:
            status = survey_pb2.ANSWER_STATUS_DOES_NOT_APPLY
            return survey_pb2.DriverScore(driver=driver, status=status)
        score = min(5, max(1, round(self._rng.gauss(mean, 0.8))))
        return survey_pb2.DriverScore(
            driver=driver, score=score, status=survey_pb2.ANSWER_STATUS_SCORED
        )

    def _response_at(self, profile: Profile, answered_at: int) -> list[Message]:
        """A response to a collection of the stream (its own id: the processor needs none)."""
        return [self._response(profile, f"ENC-{profile.entity_id}-STREAM", answered_at)]

    def _indicators(self, profile: Profile, now: dt.datetime) -> list[Message]:
        """Last month's value of every catalogue indicator, better at a better entity; some
        reported twice (a correction)."""
        rng = self._rng
        today = now.astimezone(LIMA).date()
        month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        start = int(dt.datetime.combine(month, dt.time(), LIMA).timestamp())
        reported = int(now.timestamp()) - 86_400
        good = max(0.05, min(0.98, 1.3 - profile.quality * 0.6))  # quality < 1: faster entity
        values: list[Message] = []
        for indicator in self._catalogues.indicators:
            unit = indicator.unit.value
            if unit == "boolean":
                value = float(rng.random() < good)
            elif unit == "percent":
                value = round(min(100.0, max(0.0, rng.gauss(good * 100, 12))), 1)
            else:
                value = float(rng.randint(0, 4))
            url = f"https://www.gob.pe/{profile.entity_id.lower()}/{indicator.code.lower()}.pdf"
            report = events.indicator_value(
                profile.entity_id,
                event_id=self._next_id("I"),
                indicator_code=indicator.code,
                value=value,
                unit=unit,
                period_start=start,
                reported_at=reported,
                evidence=[],
            )
            report.evidence.add(url=url, sha256=f"{rng.getrandbits(256):064x}")
            values.append(report)
            if rng.random() < CORRECTED_SHARE:
                corrected = indicator_pb2.IndicatorValue()
                corrected.CopyFrom(report)
                corrected.event_id = self._next_id("I")
                corrected.reported_at.seconds = reported + 3_600
                if unit == "percent":
                    corrected.value = min(100.0, report.value + 5)
                values.append(corrected)
        return values

    def _complaints(
        self, data: Dataset, profile: Profile, now: dt.datetime, scale: float, cutoff: int
    ) -> None:
        """``COMPLAINT_DAYS`` of complaints as an entity pushes them (no OVERDUE: the platform
        finds those), so that some terms have fallen due, some answered late or never."""
        count = round(profile.daily_tickets * scale * COMPLAINTS_PER_TICKET * COMPLAINT_DAYS)
        today = now.astimezone(LIMA).date()
        pushed: list[Message] = []
        for _ in range(count):
            day = today - dt.timedelta(days=self._rng.randrange(1, COMPLAINT_DAYS + 1))
            filed = self._office_moment(day)
            pushed += self._complaint(profile, filed, published=False)
        happened = sorted((e for e in pushed if _occurred(e) < cutoff), key=_occurred)
        data.of(COMPLAINT).setdefault(profile.entity_id, []).extend(happened)

    def _business_day(
        self, data: Dataset, profile: Profile, day: dt.date, scale: float, cutoff: int
    ) -> None:
        tickets = int(profile.daily_tickets * scale)
        attentions: list[Message] = []
        for _ in range(tickets):
            issued = self._office_moment(day)
            if issued < cutoff:
                attentions += self._ticket(profile, issued)
        procedures: list[Message] = []
        if profile.procedure_services:
            resolved = int(dt.datetime.combine(day, RESOLUTION_TIME, LIMA).timestamp())
            for _ in range(int(tickets * PROCEDURES_PER_TICKET)):
                procedures += self._procedure_resolved_at(profile, resolved)
        for domain, items in ((ATTENTION, attentions), (PROCEDURE_STAGE, procedures)):
            happened = [e for e in items if _occurred(e) < cutoff]
            data.of(domain).setdefault(profile.entity_id, []).extend(happened)

    def _recent_business_days(self, days: int, now: dt.datetime) -> list[dt.date]:
        """The ``days`` business days before today, then today if it is one."""
        calendar, today = self._catalogues.calendar, now.astimezone(LIMA).date()
        found: list[dt.date] = []
        day = today
        while len(found) < days:
            day -= dt.timedelta(days=1)
            if calendar.is_business_day(day):
                found.append(day)
        if calendar.is_business_day(today):
            found.append(today)
        return sorted(found)

    def _office_moment(self, day: dt.date) -> int:
        opening = dt.datetime.combine(day, OPENING, LIMA).timestamp()
        closing = dt.datetime.combine(day, CLOSING, LIMA).timestamp()
        return int(self._rng.uniform(opening, closing))

    # Output 2: time-ordered streams, produced straight to Kafka by tests and the benchmark.

    def stream(self, domain: str, subjects: int, start: int, span_s: int) -> list[Produced]:
        """Events of ``subjects`` tickets (or procedures...) started at random moments of
        [start, start + span_s), by entities weighted by their volume, in time order."""
        simulate = self._subjects[domain]
        weights = [p.daily_tickets if p.offers(domain) else 0 for p in self.profiles]
        starts = sorted(start + self._rng.randrange(span_s) for _ in range(subjects))
        produced = [
            Produced.of(payload)
            for at in starts
            for payload in simulate(self._rng.choices(self.profiles, weights)[0], at)
        ]
        return sorted(produced, key=lambda p: p.time)

    # The model: one ticket, one procedure.

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._run}-{self._serial}"

    def _channel(self, entity: Entity) -> str:
        channels = list(entity.channels)
        return self._rng.choices(channels, [CHANNEL_WEIGHT.get(c, 0.05) for c in channels])[0]

    def _ticket(self, profile: Profile, issued: int) -> list[Message]:
        """Issued, then called and served, or abandoned: waits stretched by the entity's
        quality and shortened on remote channels and preferential lines."""
        rng = self._rng
        channel = self._channel(profile.entity)
        offered = [s for s in profile.attention_services if channel in s.channels]
        service = rng.choice(offered or profile.attention_services)
        target = (service.target_wait_minutes or 15) * 60
        wait = rng.lognormvariate(0, 0.6) * target * profile.quality * 0.8
        wait *= CHANNEL_WAIT_FACTOR.get(channel, 1.0)
        preferential = rng.random() < 0.08
        if preferential:
            wait *= 0.4  # preferential lines are served first
        base = events.attention(
            profile.entity_id,
            ticket_id=self._next_id("T"),
            channel=channel,
            service_id=service.service_id,
            office_id=f"{profile.entity.region}-SEDE-{rng.randint(1, 4)}",
            preferential=preferential,
            preferential_reason="OLDER_ADULT" if preferential else None,
            issued_at=issued,
            called_at=None,
            finished_at=None,
        )
        steps: list[Message] = [self._step(base, Kind.ATTENTION_EVENT_KIND_TICKET_ISSUED)]
        if rng.random() < min(0.35, wait / (target * 8)):
            gave_up = issued + max(1, round(wait * 0.7))
            steps.append(self._step(base, Kind.ATTENTION_EVENT_KIND_TICKET_ABANDONED, 0, gave_up))
            return steps
        called = issued + max(1, round(wait))
        steps.append(self._step(base, Kind.ATTENTION_EVENT_KIND_TICKET_CALLED, called))
        service_s = rng.lognormvariate(0, 0.4) * (service.target_service_minutes or 8) * 60
        served = called + max(1, round(service_s))
        steps.append(self._step(base, Kind.ATTENTION_EVENT_KIND_TICKET_SERVED, called, served))
        return steps

    def _step(
        self,
        base: attention_pb2.AttentionEvent,
        kind: attention_pb2.AttentionEventKind.ValueType,
        called: int = 0,
        finished: int = 0,
    ) -> attention_pb2.AttentionEvent:
        event = attention_pb2.AttentionEvent()
        event.CopyFrom(base)
        event.event_id = self._next_id("A")
        event.kind = kind
        if called:
            event.called_at.seconds = called
        if finished:
            event.finished_at.seconds = finished
        return event

    def _taken(self, profile: Profile, service: Service) -> int:
        """Business days a procedure takes: around its legal term, more at a slow entity."""
        term = service.legal_term_business_days or 30
        return max(1, round(term * profile.quality * self._rng.uniform(0.3, 1.1)))

    def _procedure_filed_at(self, profile: Profile, filed: int) -> list[Message]:
        service = self._rng.choice(profile.procedure_services)
        filed_on = dt.datetime.fromtimestamp(filed, LIMA).date()
        day = self._catalogues.calendar.add_business_days(filed_on, self._taken(profile, service))
        resolved = int(dt.datetime.combine(day, RESOLUTION_TIME, LIMA).timestamp())
        return self._procedure(profile, service, filed, resolved)

    def _procedure_resolved_at(self, profile: Profile, resolved: int) -> list[Message]:
        """Resolved at ``resolved``, filed as many business days earlier as it took, so the
        legal-term KPI of the reported days sees late procedures too."""
        service = self._rng.choice(profile.procedure_services)
        resolved_on = dt.datetime.fromtimestamp(resolved, LIMA).date()
        filed_on = self._business_days_before(resolved_on, self._taken(profile, service))
        return self._procedure(profile, service, self._office_moment(filed_on), resolved)

    def _business_days_before(self, day: dt.date, count: int) -> dt.date:
        calendar = self._catalogues.calendar
        while count > 0:
            day -= dt.timedelta(days=1)
            count -= calendar.is_business_day(day)
        return day

    def _procedure(
        self, profile: Profile, service: Service, filed: int, resolved: int
    ) -> list[Message]:
        """Filed, assigned, sometimes observed and resubmitted, then resolved."""
        stages = [
            (Stage.PROCEDURE_STAGE_FILED, filed),
            (Stage.PROCEDURE_STAGE_ASSIGNED, filed + 3 * HOUR),
        ]
        if self._rng.random() < 0.15:
            stages.append((Stage.PROCEDURE_STAGE_OBSERVED, filed + 20 * HOUR))
            stages.append((Stage.PROCEDURE_STAGE_RESUBMITTED, filed + 22 * HOUR))
        stages.append((Stage.PROCEDURE_STAGE_RESOLVED, max(resolved, filed + 24 * HOUR)))
        procedure_id = self._next_id(f"EXP-{profile.entity_id}")
        channel = "VIRTUAL" if "VIRTUAL" in service.channels else service.channels[0]
        return [
            events.procedure_stage(
                profile.entity_id,
                event_id=self._next_id("P"),
                procedure_id=procedure_id,
                service_id=service.service_id,
                stage=stage,
                channel=channel,
                unit_id="UNIDAD-TRAMITE",
                filed_at=filed,
                occurred_at=at,
                sequence=sequence,
            )
            for sequence, (stage, at) in enumerate(stages, start=1)
        ]

    def _complaint(self, profile: Profile, filed: int, published: bool) -> list[Message]:
        """Registered, then answered after some business days (a slow entity misses more
        terms), notified, closed and archived; some end otherwise or are settled at the desk.
        ``published``: as the complaints service publishes them (due date, term, the OVERDUE
        event the day after an unanswered term); else as the entity pushes them."""
        rng, calendar = self._rng, self._catalogues.calendar
        entity = profile.entity_id
        filed_on = dt.datetime.fromtimestamp(filed, LIMA).date()
        due = self._catalogues.complaint_due(entity, None, filed_on)
        service = rng.choice(profile.attention_services) if profile.attention_services else None
        base = events.complaint(
            entity,
            complaint_id=self._next_id(f"REC-{entity}"),
            channel=self._channel(profile.entity),
            service_id=service.service_id if service else "",
            driver=rng.choice(COMPLAINT_DRIVERS),
            filed_at=filed,
            occurred_at=filed,
            complainant_hash=f"{rng.getrandbits(256):064x}",
        )
        if published:
            base.due_on = due.due_on.isoformat()
            base.term_business_days = due.term_business_days
            base.term_basis = due.basis
        if rng.random() < RESOLVED_AT_DESK_SHARE:
            steps = [_Step("RESOLVED_AT_DESK", filed), _Step("ARCHIVED", filed + 2 * HOUR)]
        else:
            steps = [_Step("REGISTERED", filed)]
            ending = rng.random()
            for stage, share in COMPLAINT_ENDINGS.items():
                if ending < share:
                    steps += [_Step(stage, filed + 26 * HOUR), _Step("ARCHIVED", filed + 50 * HOUR)]
                    break
                ending -= share
            else:
                taken = max(
                    1, round(due.term_business_days * profile.quality * rng.uniform(0.2, 1.0))
                )
                answered_on = calendar.add_business_days(filed_on, taken)
                answered = int(dt.datetime.combine(answered_on, RESOLUTION_TIME, LIMA).timestamp())
                if published and answered_on > due.due_on:
                    marked = dt.datetime.combine(
                        due.due_on + dt.timedelta(days=1), dt.time(0, 5), LIMA
                    )
                    steps.append(_Step("OVERDUE", int(marked.timestamp())))
                steps += [_Step("ANSWERED", answered), _Step("NOTIFIED", answered + 3 * HOUR)]
                if rng.random() < 0.2:
                    steps.append(_Step("FOLLOW_UP", answered + 5 * 24 * HOUR))
                steps += [
                    _Step("CLOSED", answered + 8 * 24 * HOUR),
                    _Step("ARCHIVED", answered + 9 * 24 * HOUR),
                ]
        made: list[Message] = []
        for step in steps:
            event_id = self._next_id("C")
            if step.stage == "OVERDUE":
                event_id = f"pcm-overdue/{base.complaint_id}"
            event = _complaint_event(profile, base, event_id, step)
            if step.stage == "NOT_A_RECLAMO":
                redirects = list(complaint_pb2.ComplaintRedirect.values())[1:]  # not UNSPECIFIED
                event.redirected_as = rng.choice(redirects)
            elif step.stage == "TRANSFERRED":
                others = [e.entity_id for e in self._catalogues.entities if e.entity_id != entity]
                event.transferred_to = rng.choice(others)
            if published:
                event.overdue = any(s.stage == "OVERDUE" and s.at <= step.at for s in steps)
            made.append(event)
        return made


def _complaint_event(
    profile: Profile, base: complaint_pb2.ComplaintEvent, event_id: str, step: _Step
) -> complaint_pb2.ComplaintEvent:
    event = complaint_pb2.ComplaintEvent()
    event.CopyFrom(base)
    event.event_id = event_id
    event.stage = complaint_pb2.ComplaintStage.Value(f"COMPLAINT_STAGE_{step.stage}")
    event.occurred_at.seconds = step.at
    return event


def _occurred(payload: Message) -> int:
    """Occurrence time of a payload, as its envelope's ``time`` will be."""
    return int(occurrence_time(payload, domains.domain_of(payload)).seconds)


def _by_month(days: list[dt.date]) -> list[list[dt.date]]:
    """Consecutive days grouped by calendar month, in order."""
    months: dict[tuple[int, int], list[dt.date]] = {}
    for day in days:
        months.setdefault((day.year, day.month), []).append(day)
    return list(months.values())
