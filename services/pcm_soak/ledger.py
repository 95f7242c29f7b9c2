"""The load's record of what it sent and what each item was answered: the ground truth the
verification compares the stores with.

Each item is one event id sent with one content and one purpose (``Intent``): a generator item
sent for the first time, an item made invalid on purpose, or an earlier id sent again with other
content. Every attempt of a call is counted (the client's own retries included): an attempt
whose answer never came (UNAVAILABLE, a deadline, a broken connection) may or may not have
stored its items, so their later answer "duplicate" means *stored once, by the attempt whose
answer was lost*.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from google.protobuf.message import Message


class Intent(StrEnum):
    ORIGINAL = "original"
    """A generator item, sent for the first time: it must be stored once."""
    INVALID = "invalid"
    """Made invalid on purpose: it must be refused and never stored."""
    RESEND = "resend"
    """An id already answered, sent again with other content: a duplicate, the first content
    stays."""
    RACE = "race"
    """The same id and content sent again while the first call is still storing it (a client
    whose first call timed out): one of the two is stored, the other answered duplicate."""


class Answer(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


Key = tuple[str, str]
"""(entity id, event id)"""


@dataclass(eq=False)
class Item:
    domain: str
    entity_id: str
    event_id: str
    intent: Intent
    message: Message
    answer: Answer | None = None
    """The definitive answer (None: none yet, or never)."""
    code: str = ""
    """The rejection code of a refused item (``REJECTION_CODE_...`` without the prefix)."""
    sends: int = 0
    """Attempts that carried it (the client's retries and the load's resends included)."""
    lost_answers: int = 0
    """Attempts that carried it and whose answer never came."""
    original: Item | None = None
    """For a resend or a race: the item first sent under this id."""
    twin: Item | None = None
    """For an original: the same item sent at the same moment by a second call."""

    @property
    def key(self) -> Key:
        return (self.entity_id, self.event_id)

    @property
    def stored_by_lost_answer(self) -> bool:
        """Answered "duplicate" to a retry: an earlier attempt whose answer was lost stored it."""
        return (
            self.intent is Intent.ORIGINAL
            and self.answer is Answer.DUPLICATE
            and self.lost_answers > 0
        )

    @property
    def first(self) -> bool:
        """The item that stands for its id (not a resend or a racing copy of it)."""
        return self.intent in (Intent.ORIGINAL, Intent.INVALID)

    @property
    def accepted(self) -> bool:
        """Stored by the service (once), as its answers prove."""
        if not self.first:
            return False  # the first send is the one that counts
        return self.answer is Answer.ACCEPTED or (
            self.answer is Answer.DUPLICATE and self.intent is Intent.ORIGINAL
        )


@dataclass
class DomainCalls:
    """Per domain: every attempt of a call and what became of it."""

    attempts: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    """Attempts without an answer, by gRPC status (UNAVAILABLE, DEADLINE_EXCEEDED...)."""
    gave_up: int = 0
    """Calls the client gave up on (its retries exhausted); the load sent them again."""
    in_progress: int = 0
    """Items still answered IN_PROGRESS after the client's retries (sent again later)."""


class Ledger:
    """Thread-safe: one pusher thread per stream writes to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self.calls: dict[str, DomainCalls] = {}

    def add(self, items: Iterable[Item]) -> None:
        with self._lock:
            self._items.extend(items)

    def items(self, domain: str | None = None) -> Iterator[Item]:
        with self._lock:
            chosen = list(self._items)
        return (item for item in chosen if domain is None or item.domain == domain)

    def domains(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(item.domain for item in self._items))

    def _calls(self, domain: str) -> DomainCalls:
        return self.calls.setdefault(domain, DomainCalls())

    def attempted(self, domain: str, items: Iterable[Item], lost: str | None) -> None:
        """One attempt of a call carried ``items``; ``lost``: the status of an attempt whose
        answer never came (None: answered)."""
        with self._lock:
            calls = self._calls(domain)
            calls.attempts += 1
            if lost is not None:
                calls.lost[lost] += 1
            for item in items:
                item.sends += 1
                if lost is not None:
                    item.lost_answers += 1

    def gave_up(self, domain: str) -> None:
        with self._lock:
            self._calls(domain).gave_up += 1

    def still_in_progress(self, domain: str, count: int) -> None:
        with self._lock:
            self._calls(domain).in_progress += count

    def answered(self, item: Item, answer: Answer, code: str = "") -> None:
        with self._lock:
            item.answer = answer
            item.code = code

    def sent(self) -> int:
        with self._lock:
            return sum(1 for item in self._items if item.sends)
