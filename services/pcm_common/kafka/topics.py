"""The topic registry: every topic of the platform, its key and its payload, declared as data.

Producers and consumers look topics up here by domain; nothing else spells a topic name. The
key is always the entity id so that one entity's events stay ordered within one partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    domain: str
    base_name: str
    # Field of EventEnvelope.payload carried by this topic ("" for the dead-letter topic).
    payload: str
    partitions: int
    retention_days: int
    description: str
    key: str = "entity_id"

    def name(self, prefix: str = "") -> str:
        return f"{prefix}{self.base_name}"


TOPICS: tuple[Topic, ...] = (
    Topic("attention", "pcm.attention.v1", "attention", 6, 14, "Attention lifecycle events."),
    Topic("procedure", "pcm.procedure.v1", "procedure_stage", 6, 14, "Procedure stage changes."),
    Topic("complaint", "pcm.complaint.v1", "complaint", 3, 30, "Complaint lifecycle events."),
    Topic(
        "survey_collection",
        "pcm.survey-collection.v1",
        "survey_collection",
        3,
        30,
        "Survey collection runs.",
    ),
    Topic("survey_response", "pcm.survey-response.v1", "survey_response", 3, 30, "Survey answers."),
    Topic("indicator", "pcm.indicator.v1", "indicator_value", 3, 30, "Self-reported indicators."),
    Topic("kpi", "pcm.kpi.v1", "kpi_value", 6, 7, "KPI values computed by the processors."),
    Topic("benchmark", "pcm.benchmark.v1", "benchmark_result", 3, 30, "Benchmark results."),
    Topic(
        "dead_letter",
        "pcm.dead-letter.v1",
        "",
        1,
        30,
        "Undecodable or unknown-version messages, with the reason in headers.",
    ),
)

_BY_DOMAIN = {topic.domain: topic for topic in TOPICS}
_BY_PAYLOAD = {topic.payload: topic for topic in TOPICS if topic.payload}


def topic_for_domain(domain: str) -> Topic:
    try:
        return _BY_DOMAIN[domain]
    except KeyError:
        raise KeyError(f"no topic for domain {domain!r}; known: {sorted(_BY_DOMAIN)}") from None


def topic_for_payload(payload_field: str) -> Topic:
    return _BY_PAYLOAD[payload_field]


def topic_names(prefix: str = "", topics: Iterable[Topic] = TOPICS) -> list[str]:
    return [topic.name(prefix) for topic in topics]
