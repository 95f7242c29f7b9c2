"""The complaints worker: the shared outbox worker (``pcm_common.outbox``: one leader among
replicas relays the complaint outbox to Kafka) with one periodic job, the overdue pass: every
``overdue_interval_s`` it flags complaints past due (``ComplaintBook.mark_overdue``: once per
complaint) and refreshes the per-entity gauges of open and overdue complaints.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from pcm_common.logging import get_logger
from pcm_common.outbox import PeriodicJob

from pcm_complaints.book import ComplaintBook
from pcm_complaints.metrics import MARKED_OVERDUE, OPEN, OVERDUE, OVERDUE_JOB_SUCCESS

log = get_logger(__name__)


class OverdueJob:
    """Flags complaints past due once and keeps the per-entity gauges."""

    def __init__(self, book: ComplaintBook, today: Callable[[], dt.date]) -> None:
        self._book = book
        self._today = today

    def run(self) -> int:
        today = self._today()
        marked = 0
        while batch := self._book.mark_overdue(today):
            for record in batch:
                MARKED_OVERDUE.labels(entity=record.entity_id).inc()
            marked += len(batch)
        OPEN.clear()
        OVERDUE.clear()
        for entity, open_, overdue in self._book.counts():
            OPEN.labels(entity=entity).set(open_)
            OVERDUE.labels(entity=entity).set(overdue)
        OVERDUE_JOB_SUCCESS.set(time.time())
        if marked:
            log.info("complaints marked overdue", complaints=marked, today=today.isoformat())
        return marked

    def job(self, interval_s: float) -> PeriodicJob:
        return PeriodicJob("overdue", interval_s, self.run, self.forget)

    @staticmethod
    def forget() -> None:
        """Only the leader reports the book."""
        OPEN.clear()
        OVERDUE.clear()


def local_today(time_zone: str, override: dt.date | None = None) -> Callable[[], dt.date]:
    zone = ZoneInfo(time_zone)
    return lambda: override or dt.datetime.now(zone).date()
