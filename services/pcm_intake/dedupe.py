"""Remembers recently accepted event ids so a resend is answered 'duplicate', not stored again.

This is the caller-facing half of idempotency. Storage is exactly-once regardless: the stream
processors collapse repeated event ids, so an id older than the window (or sent to another
replica) still counts once; the window only decides what the answer says.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

Key = tuple[str, str]  # (entity_id, event_id)


class DedupeWindow:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._confirmed: OrderedDict[Key, None] = OrderedDict()
        self._pending: set[Key] = set()
        self._lock = threading.Lock()

    def claim(self, keys: Iterable[Key]) -> list[bool]:
        """For each key: True if new (now reserved for this call), False if already seen.

        A key repeated inside the same batch is new only the first time.
        """
        with self._lock:
            answers = []
            for key in keys:
                seen = key in self._confirmed or key in self._pending
                if not seen:
                    self._pending.add(key)
                answers.append(not seen)
            return answers

    def confirm(self, keys: Iterable[Key]) -> None:
        """The broker acknowledged these: remember them, forgetting the oldest beyond capacity."""
        with self._lock:
            for key in keys:
                self._pending.discard(key)
                self._confirmed[key] = None
            while len(self._confirmed) > self._capacity:
                self._confirmed.popitem(last=False)

    def release(self, keys: Iterable[Key]) -> None:
        """The write failed: the caller will resend, and that resend must not look duplicate."""
        with self._lock:
            self._pending.difference_update(keys)
