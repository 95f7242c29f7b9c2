"""An in-memory event store with the producer contract of ``AcknowledgedProducer``.

For fast unit tests of the push kit and the services (as arroyo's LocalBroker is for its
strategies): records are kept per topic in send order, and an outage can be switched on to see
how a service answers when the broker does not acknowledge.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

from pcm_common.kafka.producer import BrokerUnavailable, Record


class InMemoryProducer:
    def __init__(self) -> None:
        self._topics: defaultdict[str, list[Record]] = defaultdict(list)
        self._lock = threading.Lock()
        self.available = True
        self.closed = False

    def send_and_wait(self, topic: str, records: Sequence[Record]) -> None:
        if self.closed:
            raise BrokerUnavailable("producer is closed")
        if not records:
            return
        if not self.available:
            raise BrokerUnavailable("in-memory broker switched off")
        with self._lock:
            self._topics[topic].extend(records)

    def records(self, topic: str) -> list[Record]:
        """Every record acknowledged on ``topic``, in send order."""
        with self._lock:
            return list(self._topics[topic])

    def close(self) -> None:
        self.closed = True
