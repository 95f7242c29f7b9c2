"""Which event ids were already accepted: the caller-facing half of "stored once".

The push kit claims an item's (entity, domain, event id) before producing it, confirms the claim
once the broker acknowledged, and releases it when the produce failed. A claim is answered:

- ``NEW``: nobody had it; this call produces the event;
- ``DUPLICATE``: an earlier call stored it; the answer says duplicate and nothing is produced;
- ``IN_PROGRESS``: another call holds a fresh claim on it right now (a client retrying while its
  first call is still producing); the item is refused with ``REJECTION_CODE_IN_PROGRESS`` so
  that the client asks again and learns the outcome.

Two ledgers: ``MemoryLedger`` remembers the recent ids of one replica (fast, forgets on
restart), ``PostgresLedger`` (postgres_ledger.py) all of them across replicas and restarts.
``LayeredLedger`` puts the first in front of the second. Storage is exactly-once whatever the
answer: the processors keep the first copy of an event id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from enum import Enum
from typing import Protocol


class Claim(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in_progress"


class LedgerUnavailable(Exception):
    """The durable ledger cannot be reached: nothing may be produced (UNAVAILABLE)."""


class EventLedger(Protocol):
    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        """One answer per id, in order; ids must be distinct. NEW ids are now held by the
        caller, who must confirm or release them."""

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        """The broker acknowledged these: later claims answer DUPLICATE."""

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        """Producing failed: a resend must be answered NEW."""

    def close(self) -> None: ...


Key = tuple[str, str, str]  # (domain, entity, event id)


class MemoryLedger:
    """The ids one replica accepted recently (bounded, oldest forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._confirmed: OrderedDict[Key, None] = OrderedDict()
        self._pending: set[Key] = set()
        self._lock = threading.Lock()

    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        with self._lock:
            answers = []
            for event_id in event_ids:
                key = (domain, entity_id, event_id)
                if key in self._confirmed:
                    answers.append(Claim.DUPLICATE)
                elif key in self._pending:
                    answers.append(Claim.IN_PROGRESS)
                else:
                    self._pending.add(key)
                    answers.append(Claim.NEW)
            return answers

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        with self._lock:
            for event_id in event_ids:
                key = (domain, entity_id, event_id)
                self._pending.discard(key)
                self._confirmed[key] = None
            while len(self._confirmed) > self._capacity:
                self._confirmed.popitem(last=False)

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        with self._lock:
            self._pending.difference_update((domain, entity_id, e) for e in event_ids)

    def close(self) -> None:
        pass


class LayeredLedger:
    """A replica's recent window in front of the durable ledger: a resend of something this
    replica just accepted is answered without a round trip."""

    def __init__(self, window: MemoryLedger, durable: EventLedger) -> None:
        self._window = window
        self._durable = durable

    def claim(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> list[Claim]:
        answers = self._window.claim(domain, entity_id, event_ids)
        ask = [e for e, answer in zip(event_ids, answers, strict=True) if answer is Claim.NEW]
        if not ask:
            return answers
        try:
            durable = dict(zip(ask, self._durable.claim(domain, entity_id, ask), strict=True))
        except BaseException:
            self._window.release(domain, entity_id, ask)
            raise
        known = [e for e in ask if durable[e] is Claim.DUPLICATE]
        self._window.confirm(domain, entity_id, known)
        self._window.release(domain, entity_id, [e for e in ask if durable[e] is Claim.IN_PROGRESS])
        return [durable.get(e, answer) for e, answer in zip(event_ids, answers, strict=True)]

    def confirm(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        self._durable.confirm(domain, entity_id, event_ids)
        self._window.confirm(domain, entity_id, event_ids)

    def release(self, domain: str, entity_id: str, event_ids: Sequence[str]) -> None:
        self._window.release(domain, entity_id, event_ids)
        self._durable.release(domain, entity_id, event_ids)

    def close(self) -> None:
        self._durable.close()
