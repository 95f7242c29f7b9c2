"""Topic creation from the registry, at service start (idempotent)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from pcm_common.kafka.topics import TOPICS, Topic
from pcm_common.logging import get_logger

log = get_logger(__name__)
_DAY_MS = 24 * 3600 * 1000
_VISIBLE_TIMEOUT_MS = 30_000
"""How long created topics may take to show in the metadata (a broker just restarted is slow)."""


def topic_options(topic: Topic, replication_factor: int) -> dict[str, Any]:
    """A topic's creation options, in the form ``KafkaAdminClient.create_topics`` takes."""
    return {
        "num_partitions": topic.partitions,
        "replication_factor": replication_factor,
        "configs": {
            "retention.ms": str(topic.retention_days * _DAY_MS),
            # With acks=all, a write needs every in-sync replica; one broker locally, 2 of 3 on a
            # cluster, so an acknowledged event survives the loss of a broker.
            "min.insync.replicas": str(min(2, replication_factor)),
        },
    }


def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    replication_factor: int = 1,
    topics: tuple[Topic, ...] = TOPICS,
) -> list[str]:
    """Create the registry's missing topics with their partition counts; return those created.

    Returns once every one of ``topics`` is in the broker's metadata with a leader for each
    partition: a created topic is not usable at once (KRaft propagates it asynchronously), and
    a service starting right after would otherwise see it without partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="pcm-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t.name(prefix) not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics({topic.name(prefix): topic_options(topic, replication_factor)})
                created.append(topic.name(prefix))
            except TopicAlreadyExistsError:
                pass  # another replica created it between our list and create: fine
        if created:
            log.info("created topics", topics=created)
        admin.wait_for_topics([t.name(prefix) for t in topics], timeout_ms=_VISIBLE_TIMEOUT_MS)
        return created
    finally:
        admin.close()


def describe_partitions(bootstrap: str, name: str) -> int:
    """Number of partitions of a topic (for checks and tests)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="pcm-admin")
    try:
        (description,) = admin.describe_topics([name])
        return len(description["partitions"])
    finally:
        admin.close()
