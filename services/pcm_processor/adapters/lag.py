"""Consumer lag per partition (end offset - committed offset), as Kafka itself reports it.

Read from the broker with kafka-python in a worker thread, not from faust's in-memory state, so
the gauge shows what a restarted processor would actually replay.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pcm_processor.metrics import PROCESSOR_CONSUMER_LAG, PROCESSOR_LAG_REFRESHED


class LagMonitor:
    def __init__(self, bootstrap: str, group_id: str, topics: Sequence[str]) -> None:
        self._bootstrap = bootstrap.split(",")
        self._group_id = group_id
        self._topics = tuple(topics)
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def lag(self) -> dict[tuple[str, int], int]:
        """Blocking: lag of every partition of the monitored topics."""
        if self._admin is None or self._consumer is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="pcm-lag")
            self._consumer = KafkaConsumer(
                bootstrap_servers=self._bootstrap, client_id="pcm-lag", enable_auto_commit=False
            )
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        committed = self._admin.list_group_offsets({self._group_id: None}).get(self._group_id, {})
        ends = self._consumer.end_offsets(partitions)
        starts = self._consumer.beginning_offsets(partitions)
        result = {}
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            result[(tp.topic, tp.partition)] = max(ends[tp] - position, 0)
        return result

    def refresh(self) -> dict[tuple[str, int], int]:
        """Read the lag and publish it, with the time of the read (only after a read that
        succeeded: a stale gauge must not look fresh)."""
        read_at = time.time()  # before reading: messages produced earlier are all counted
        try:
            lags = self.lag()
        except Exception:
            self.close()  # reconnect next time
            raise
        for (topic, partition), lag in lags.items():
            PROCESSOR_CONSUMER_LAG.labels(topic, str(partition)).set(lag)
        PROCESSOR_LAG_REFRESHED.set(read_at)
        return lags

    def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if admin is not None:
            admin.close()
        if consumer is not None:
            consumer.close()
