"""The demo reads the processor's progress from its /metrics page, as the processor writes it."""

from __future__ import annotations

from pcm_demo.processor_lag import LAG, REFRESHED, parse
from prometheus_client import CollectorRegistry, Gauge, generate_latest

TOPICS = ["demo.pcm.attention.v1", "demo.pcm.procedure-stage.v1"]


def page(refreshed_at: float, lags: dict[tuple[str, str], int]) -> str:
    registry = CollectorRegistry()
    lag = Gauge(LAG, "lag", ["topic", "partition"], registry=registry)
    for (topic, partition), value in lags.items():
        lag.labels(topic, partition).set(value)
    Gauge(REFRESHED, "refreshed", registry=registry).set(refreshed_at)
    return generate_latest(registry).decode()


def test_caught_up_needs_zero_lag_on_every_topic_read_after_the_push() -> None:
    zero = {(topic, "0"): 0 for topic in TOPICS}
    assert parse(page(200.0, zero)).caught_up(TOPICS, since=100.0)
    assert not parse(page(90.0, zero)).caught_up(TOPICS, since=100.0)  # read before the push
    behind = parse(page(200.0, {**zero, (TOPICS[1], "3"): 7}))
    assert not behind.caught_up(TOPICS, since=100.0)
    assert behind.behind(TOPICS) == 7 and behind.behind(TOPICS[:1]) == 0
    one_topic = parse(page(200.0, {(TOPICS[0], "0"): 0}))
    assert not one_topic.caught_up(TOPICS, since=100.0)  # the other topic not reported yet


def test_a_processor_that_never_refreshed_is_not_caught_up() -> None:
    report = parse("")
    assert report.refreshed_at == 0 and not report.caught_up(TOPICS, since=0.0)
