"""The topic registry: every topic of the platform, its key and its payload, declared as data.

One topic per domain of ``pcm_common.domains`` (named after it), plus the dead-letter topic.
Producers and consumers look topics up here by domain name; nothing else spells a topic name.
The key is always the entity id so that one entity's events stay ordered within one partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pcm_common.domains import ALL_DOMAINS, EventDomain


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

    @classmethod
    def of(cls, domain: EventDomain) -> Topic:
        return cls(
            domain.name,
            domain.topic_base_name,
            domain.payload_field,
            domain.partitions,
            domain.retention_days,
            domain.description,
            domain.key_field,
        )


DEAD_LETTER = Topic(
    "dead_letter",
    "pcm.dead-letter.v1",
    "",
    1,
    30,
    "Undecodable or unknown-version messages, with the reason in headers.",
)

TOPICS: tuple[Topic, ...] = (*(Topic.of(domain) for domain in ALL_DOMAINS), DEAD_LETTER)

_BY_DOMAIN = {topic.domain: topic for topic in TOPICS}


def topic_for_domain(domain: str) -> Topic:
    try:
        return _BY_DOMAIN[domain]
    except KeyError:
        raise KeyError(f"no topic for domain {domain!r}; known: {sorted(_BY_DOMAIN)}") from None


def topic_names(prefix: str = "", topics: Iterable[Topic] = TOPICS) -> list[str]:
    return [topic.name(prefix) for topic in topics]
