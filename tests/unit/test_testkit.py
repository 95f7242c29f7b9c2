"""The test kit keeps up with the domain registry, and its generator is deterministic."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pcm.monitoring.v1 import attention_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.domains import EVENT_DOMAINS, EventDomain
from pcm_common.kafka.envelope import decode
from pcm_common.push import ItemContext, item_errors
from pcm_common.validation import TimeWindow
from pcm_intake.service import declarations
from pcm_intake.validation import IntakeCatalogue
from pcm_testkit import events
from pcm_testkit.generator import Generator
from pcm_testkit.metrics import metric_value
from pcm_testkit.waiting import wait_until


@pytest.mark.parametrize("domain", EVENT_DOMAINS, ids=lambda d: d.name)
def test_every_pushed_domain_has_a_builder_of_its_message(domain: EventDomain) -> None:
    assert domain.name in events.BUILDERS, f"pcm_testkit.events has no builder for {domain.name}"
    payload = events.BUILDERS[domain.name]()
    assert type(payload) is domain.message
    envelope = events.enveloped(payload)
    assert envelope.WhichOneof("payload") == domain.name
    # The envelope is what a consumer of the domain's topic accepts.
    assert decode(envelope.SerializeToString(), domain.payload_field) == envelope
    assert envelope.time.seconds > 0 and envelope.received_at == envelope.time


@pytest.mark.parametrize("entity_id", ["RENIEC", "SUNARP"])
def test_defaults_pass_the_intakes_validation(catalogues: Catalogues, entity_id: str) -> None:
    window = TimeWindow(time.time(), future_skew_s=300, max_age_s=400 * 86_400)
    item = ItemContext(entity_id, window)
    for declaration in declarations(IntakeCatalogue.of(catalogues)):
        event = events.BUILDERS[declaration.domain.name](entity_id)
        assert item_errors(event, declaration.validate, item) == [], event


def test_overrides_take_labels_seconds_and_none() -> None:
    event = events.attention("SUNARP", kind="TICKET_ABANDONED", called_at=None, finished_at=1234)
    assert event.entity_id == "SUNARP" and event.service_id == "ORIENTACION"
    assert event.kind == attention_pb2.ATTENTION_EVENT_KIND_TICKET_ABANDONED
    assert not event.HasField("called_at") and event.finished_at.seconds == 1234
    response = events.survey_response(scores={"TIEMPO": 2})
    assert [(s.driver, s.score) for s in response.scores] == [("TIEMPO", 2)]
    with pytest.raises(ValueError, match="no value 'LOST'"):
        events.procedure_stage(stage="LOST")


def test_the_shorthand_is_the_same_event_every_time() -> None:
    at = events.local_time(2025, 3, 10, 9)
    first = events.attention_event("RENIEC", "T1", "TICKET_SERVED", "X", "VIRTUAL", at, at + 60)
    again = events.attention_event("RENIEC", "T1", "TICKET_SERVED", "X", "VIRTUAL", at, at + 60)
    assert first == again and first.attention.event_id == "T1-TICKET_SERVED"
    assert first.received_at.seconds == at + 60  # the occurrence time


def test_streams_are_time_ordered_and_reproducible(catalogues: Catalogues) -> None:
    start = events.local_time(2025, 1, 31, 18)

    def streams(seed: int) -> list[list[bytes]]:
        generator = Generator(catalogues, seed=seed, entities=4, run_id="r")
        return [
            [p.value for p in generator.stream(name, 50, start, 6 * 3600)]
            for name in generator.domains
        ]

    first = Generator(catalogues, seed=7, entities=4).stream("attention", 200, start, 3600)
    assert [p.time for p in first] == sorted(p.time for p in first)
    assert len({p.envelope.entity_id for p in first}) > 1
    assert streams(7) == streams(7)
    assert streams(7) != streams(8)


def test_the_dataset_has_only_what_happened_by_now(catalogues: Catalogues) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday, mid-morning in Lima
    dataset = Generator(catalogues, seed=1).dataset(days=2, now=now, scale=0.05)
    times = [
        events.enveloped(payload).time.seconds
        for per_entity in dataset.events.values()
        for payloads in per_entity.values()
        for payload in payloads
    ]
    assert len(times) == dataset.total > 0
    assert max(times) < now.timestamp()


def test_metric_value_sums_matching_samples() -> None:
    page = (
        "# TYPE x_total counter\n"
        'x_total{topic="a"} 2.0\nx_total{topic="b"} 3.0\n'
        "# TYPE y histogram\n"
        'y_bucket{le="+Inf"} 4.0\ny_count 4.0\ny_sum 1.5\n'
    )
    assert metric_value(page, "x_total") == 5
    assert metric_value(page, "x_total", {"topic": "b"}) == 3
    assert metric_value(page, "y_count") == 4
    assert metric_value(page, "missing") == 0


def test_wait_until_returns_the_value_or_fails_with_the_message() -> None:
    calls = iter([None, 0, "done"])
    assert wait_until(lambda: next(calls), 5, "never", interval_s=0) == "done"
    with pytest.raises(AssertionError, match="still nothing"):
        wait_until(lambda: None, 0.05, lambda: "still nothing", interval_s=0.01)
