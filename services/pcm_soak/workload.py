"""What the soak sends, and when: the generator's national dataset arranged into paced batches
per stream, with items made invalid on purpose and earlier ids sent again with other content.

Every batch is one entity's (each entity pushes with its own token) and one domain's. Streams
are pushed side by side, one thread each; a batch is due at a fraction of the load window:

- ``attention``, ``procedure_stage`` (the intake): batches of 500, entities interleaved;
- ``complaint``: whole complaints per batch (a complaint's events in lifecycle order in one
  call), so the overdue job never sees a complaint between two of its events: the complaints it
  flags are exactly those left open past their due date, which the verification can predict;
- ``indicator_value``: an entity's values (corrections after the value they correct) in the
  first half of the window;
- ``survey``: each entity's collections first, then the responses to them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest

from google.protobuf.message import Message
from pcm.monitoring.v1 import (
    attention_pb2,
    complaint_pb2,
    indicator_pb2,
    procedure_pb2,
    survey_pb2,
)
from pcm_testkit.generator import Dataset

from pcm_soak.ledger import Intent, Item

ATTENTION, PROCEDURE_STAGE, COMPLAINT = "attention", "procedure_stage", "complaint"
INDICATOR_VALUE = "indicator_value"
SURVEY_COLLECTION, SURVEY_RESPONSE = "survey_collection", "survey_response"
DOMAINS = (
    ATTENTION,
    PROCEDURE_STAGE,
    COMPLAINT,
    INDICATOR_VALUE,
    SURVEY_COLLECTION,
    SURVEY_RESPONSE,
)
INTAKE_BATCH = 500
COMPLAINT_BATCH = 300
RESPONSE_BATCH = 200
UNKNOWN = "SOAK-UNKNOWN"
"""A code no catalogue has: what invalid items carry."""


@dataclass
class Batch:
    domain: str
    entity_id: str
    items: list[Item]
    at: float = 0.0
    """When it is due, as a fraction of the load window."""
    twins: list[Item] = field(default_factory=list)
    """Its generator items sent again at the same moment by a second call (``Intent.RACE``)."""

    @property
    def all_items(self) -> list[Item]:
        return [*self.items, *self.twins]


@dataclass
class Stream:
    name: str
    batches: list[Batch]
    parks_in_progress: bool = False
    """Items still "in progress" after the client's retries are sent again later instead of
    holding the stream (the intake: order does not matter, and a dead replica's claims last a
    lease)."""

    @property
    def items(self) -> int:
        return sum(len(batch.all_items) for batch in self.batches)


Change = Callable[[Message, random.Random], Message | None]
"""A copy of an item with other content (None: this item cannot be changed that way)."""


def build(
    dataset: Dataset, rng: random.Random, invalid: float, resend: float, race: float
) -> list[Stream]:
    """The streams of ``dataset``: invalid items and resends at ``invalid`` and ``resend`` of
    each domain's items, and ``race`` of each domain's batches sent twice at once (at least
    one of each)."""
    streams = _streams(dataset, rng, invalid, resend)
    for stream in streams:
        by_domain: dict[str, list[Batch]] = {}
        for batch in stream.batches:
            if any(item.intent is Intent.ORIGINAL for item in batch.items):
                by_domain.setdefault(batch.domain, []).append(batch)
        for batches in by_domain.values():
            for batch in rng.sample(batches, min(len(batches), _share(len(batches), race))):
                _race(batch)
    return streams


def _race(batch: Batch) -> None:
    for item in batch.items:
        if item.intent is Intent.ORIGINAL:
            twin = Item(item.domain, item.entity_id, item.event_id, Intent.RACE, item.message)
            twin.original, item.twin = item, twin
            batch.twins.append(twin)


def _streams(dataset: Dataset, rng: random.Random, invalid: float, resend: float) -> list[Stream]:
    events = dataset.events
    shares = (invalid, resend)
    intake = [
        Stream(
            name,
            _arrange(
                name,
                _anomalies(name, _chunked(name, events.get(name, {}), INTAKE_BATCH), rng, *shares),
                rng,
                (0.0, 0.9),
            ),
            parks_in_progress=True,
        )
        for name in (ATTENTION, PROCEDURE_STAGE)
    ]
    complaints = _anomalies(COMPLAINT, _whole_complaints(events.get(COMPLAINT, {})), rng, *shares)
    indicators = _anomalies(
        INDICATOR_VALUE,
        _chunked(INDICATOR_VALUE, events.get(INDICATOR_VALUE, {}), 500),
        rng,
        *shares,
    )
    collections = _anomalies(
        SURVEY_COLLECTION,
        _chunked(SURVEY_COLLECTION, events.get(SURVEY_COLLECTION, {}), 1_000),
        rng,
        *shares,
    )
    responses = _anomalies(
        SURVEY_RESPONSE,
        _chunked(SURVEY_RESPONSE, events.get(SURVEY_RESPONSE, {}), RESPONSE_BATCH),
        rng,
        *shares,
    )
    return [
        *intake,
        Stream(COMPLAINT, _arrange(COMPLAINT, complaints, rng, (0.0, 0.9))),
        Stream(INDICATOR_VALUE, _arrange(INDICATOR_VALUE, indicators, rng, (0.0, 0.45))),
        Stream(
            "survey",
            _arrange(SURVEY_COLLECTION, collections, rng, (0.0, 0.1))
            + _arrange(SURVEY_RESPONSE, responses, rng, (0.12, 0.9)),
        ),
    ]


PerEntity = dict[str, list[list[Item]]]
"""Entity -> its batches (each a list of items), in the order it sends them."""


def _item(domain: str, message: Message, intent: Intent = Intent.ORIGINAL) -> Item:
    entity_id = str(getattr(message, "entity_id"))  # noqa: B009 (every pushed message has one)
    event_id = str(getattr(message, "event_id"))  # noqa: B009
    return Item(domain, entity_id, event_id, intent, message)


def _chunked(domain: str, per_entity: Mapping[str, Sequence[Message]], size: int) -> PerEntity:
    return {
        entity: [
            [_item(domain, m) for m in messages[start : start + size]]
            for start in range(0, len(messages), size)
        ]
        for entity, messages in per_entity.items()
        if messages
    }


def _whole_complaints(per_entity: Mapping[str, Sequence[Message]]) -> PerEntity:
    """Each complaint's events together, in the order the entity sent them, whole complaints
    per batch."""
    found: PerEntity = {}
    for entity, messages in per_entity.items():
        complaints: dict[str, list[Item]] = {}
        for message in messages:
            complaint_id = str(getattr(message, "complaint_id"))  # noqa: B009
            complaints.setdefault(complaint_id, []).append(_item(COMPLAINT, message))
        batches: list[list[Item]] = [[]]
        for events in complaints.values():
            if batches[-1] and len(batches[-1]) + len(events) > COMPLAINT_BATCH:
                batches.append([])
            batches[-1].extend(events)
        if batches[0]:
            found[entity] = batches
    return found


def _anomalies(
    domain: str, per_entity: PerEntity, rng: random.Random, invalid: float, resend: float
) -> PerEntity:
    """Add invalid items beside random originals, and resends of random originals in a later
    batch of the same entity (a new last batch when there is none)."""
    originals = [
        (entity, index, item)
        for entity, batches in per_entity.items()
        for index, batch in enumerate(batches)
        for item in batch
    ]
    if not originals:
        return per_entity
    for entity, index, item in rng.sample(originals, _share(len(originals), invalid)):
        bad = _INVALID[domain](item.message, rng)
        if bad is not None:
            per_entity[entity][index].append(_item(domain, bad, Intent.INVALID))
    changeable = [o for o in originals if domain != SURVEY_RESPONSE or overall_score(o[2].message)]
    chosen = rng.sample(changeable, min(len(changeable), _share(len(originals), resend)))
    for entity, index, item in chosen:
        changed = _RESENT[domain](item.message, rng)
        assert changed is not None
        batches = per_entity[entity]
        later = rng.randint(index + 1, len(batches))
        if later == len(batches):
            batches.append([])
        again = _item(domain, changed, Intent.RESEND)
        again.original = item
        batches[later].append(again)
    return per_entity


def _share(count: int, share: float) -> int:
    return max(1, round(count * share)) if share > 0 else 0


def _arrange(
    domain: str, per_entity: PerEntity, rng: random.Random, window: tuple[float, float]
) -> list[Batch]:
    """Entities interleaved (each entity's batches in order), due over ``window``."""
    entities = list(per_entity)
    rng.shuffle(entities)
    rounds = zip_longest(*(per_entity[entity] for entity in entities))
    ordered = [
        Batch(domain, batch[0].entity_id, batch)
        for one_round in rounds
        for batch in one_round
        if batch
    ]
    low, high = window
    total, before = sum(len(batch.items) for batch in ordered), 0
    for batch in ordered:  # due in proportion to the items before it: a steady item rate
        batch.at = low + (high - low) * before / max(1, total)
        before += len(batch.items)
    return ordered


# --- invalid items (refused, never stored) and resends (duplicates, first content kept) -----


PUSHED = (
    attention_pb2.AttentionEvent,
    procedure_pb2.ProcedureStageEvent,
    complaint_pb2.ComplaintEvent,
    indicator_pb2.IndicatorValue,
    survey_pb2.SurveyCollection,
    survey_pb2.SurveyResponse,
)
"""What the push services take: each has an ``event_id``."""


def _copy(message: Message, suffix: str = "") -> Message:
    copy = type(message)()
    copy.CopyFrom(message)
    if suffix:
        assert isinstance(copy, PUSHED)
        copy.event_id = f"{copy.event_id}-{suffix}"
    return copy


def _unknown_service(message: Message, rng: random.Random) -> Message:
    bad = _copy(message, "invalid")
    assert isinstance(bad, (attention_pb2.AttentionEvent, procedure_pb2.ProcedureStageEvent))
    bad.service_id = UNKNOWN
    return bad


def _never_registered(message: Message, rng: random.Random) -> Message:
    """An answer to a complaint that was never registered: an illegal transition."""
    bad = _copy(message, "invalid")
    assert isinstance(bad, complaint_pb2.ComplaintEvent)
    bad.complaint_id = f"{bad.complaint_id}-{UNKNOWN}"
    bad.stage = complaint_pb2.COMPLAINT_STAGE_ANSWERED
    return bad


def _unknown_indicator(message: Message, rng: random.Random) -> Message:
    bad = _copy(message, "invalid")
    assert isinstance(bad, indicator_pb2.IndicatorValue)
    bad.indicator_code = UNKNOWN
    return bad


def _inconsistent_counts(message: Message, rng: random.Random) -> Message:
    """More people offered the survey than were served: refused INCONSISTENT."""
    bad = _copy(message, "invalid")
    assert isinstance(bad, survey_pb2.SurveyCollection)
    bad.collection_id = f"{bad.collection_id}-{UNKNOWN}"
    bad.offered = bad.interactions + 1
    return bad


def _unknown_collection(message: Message, rng: random.Random) -> Message:
    bad = _copy(message, "invalid")
    assert isinstance(bad, survey_pb2.SurveyResponse)
    bad.collection_id = UNKNOWN
    bad.response_id = f"{bad.response_id}-{UNKNOWN}"
    return bad


_INVALID: dict[str, Callable[[Message, random.Random], Message | None]] = {
    ATTENTION: _unknown_service,
    PROCEDURE_STAGE: _unknown_service,
    COMPLAINT: _never_registered,
    INDICATOR_VALUE: _unknown_indicator,
    SURVEY_COLLECTION: _inconsistent_counts,
    SURVEY_RESPONSE: _unknown_collection,
}


def _other_office(message: Message, rng: random.Random) -> Message:
    again = _copy(message)
    assert isinstance(again, attention_pb2.AttentionEvent)
    again.office_id = f"{again.office_id}-RESENT"
    return again


def _other_unit(message: Message, rng: random.Random) -> Message:
    again = _copy(message)
    assert isinstance(again, procedure_pb2.ProcedureStageEvent)
    again.unit_id = "UNIDAD-RESENT"
    return again


COMPLAINT_DRIVERS = ("TIEMPO", "TRATO_PROFESIONAL", "INFORMACION", "RESULTADO", "ACCESIBILIDAD")


def _other_driver(message: Message, rng: random.Random) -> Message:
    again = _copy(message)
    assert isinstance(again, complaint_pb2.ComplaintEvent)
    again.driver = rng.choice([d for d in COMPLAINT_DRIVERS if d != again.driver])
    return again


def _other_value(message: Message, rng: random.Random) -> Message:
    again = _copy(message)
    assert isinstance(again, indicator_pb2.IndicatorValue)
    if again.unit == "boolean":
        again.value = 1.0 - again.value
    elif again.unit == "percent":
        again.value = again.value + 1 if again.value <= 99 else again.value - 1
    else:
        again.value += 1
    return again


def _more_interactions(message: Message, rng: random.Random) -> Message:
    again = _copy(message)
    assert isinstance(again, survey_pb2.SurveyCollection)
    again.interactions += 1
    return again


def _other_overall(message: Message, rng: random.Random) -> Message | None:
    """The overall score changed (only for a response whose overall question was scored)."""
    if overall_score(message) == 0:
        return None
    again = _copy(message)
    assert isinstance(again, survey_pb2.SurveyResponse)
    again.overall.score = rng.choice([s for s in range(1, 6) if s != again.overall.score])
    return again


def overall_score(message: Message) -> int:
    """A response's overall score, 0 when the question was not scored."""
    assert isinstance(message, survey_pb2.SurveyResponse)
    if not message.HasField("overall"):
        return 0
    status = message.overall.status
    if status not in (survey_pb2.ANSWER_STATUS_SCORED, survey_pb2.ANSWER_STATUS_UNSPECIFIED):
        return 0
    return int(message.overall.score)


_RESENT: dict[str, Change] = {
    ATTENTION: _other_office,
    PROCEDURE_STAGE: _other_unit,
    COMPLAINT: _other_driver,
    INDICATOR_VALUE: _other_value,
    SURVEY_COLLECTION: _more_interactions,
    SURVEY_RESPONSE: _other_overall,
}


def streams_items(streams: Iterable[Stream]) -> list[Item]:
    return [item for stream in streams for batch in stream.batches for item in batch.all_items]
