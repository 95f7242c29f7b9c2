"""KPI states of the incremental engine (pure): what a processor holds in memory per period.

A state is, per (entity, grain, period) and per slice, the vector ``[n_events, *aggregates]`` of
a plan whose aggregates are sums over subjects (``KpiPlan.split``). Every state of one entity is
exact up to the same Kafka offset, the entity's *watermark* (one entity's events share one
partition, so its offsets are ordered): a flush moves the watermark of each entity it touches
and, in the same step, adds to each held state what the batch changed (``apply``) or puts a state
built from the facts up to the new watermark (``put``).

States are a cache of what the facts say, never the only copy: a process that restarts, or gets
other partitions, starts empty and builds each state from the facts the first time it is
touched. Memory is bounded by evicting the least recently touched periods (``max_slices``).
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass

Slice = tuple[str, str]
"""(channel, service_id); ``""`` is "all"."""
Vector = MutableSequence[int]
"""``[n_events, *aggregates]`` in the plan's aggregate order: all integers, so sums are exact.
Held as 64-bit arrays (a third of a list of Python ints: 2,700 entities hold ~10^5 slices)."""


def packed(values: Sequence[int]) -> Vector:
    return array("q", values)


def zeros(width: int) -> Vector:
    return array("q", bytes(8 * width))


def _shared(slice_: Slice) -> Slice:
    """The slice with its names interned: thousands of states repeat the same few."""
    return sys.intern(slice_[0]), sys.intern(slice_[1])


@dataclass(frozen=True, slots=True, order=True)
class PeriodKey:
    entity_id: str
    grain: str
    period_start: int


class StateStore:
    """Period states under an LRU bound, with one watermark per entity."""

    def __init__(self, max_slices: int) -> None:
        self.max_slices = max_slices
        self._periods: OrderedDict[PeriodKey, dict[Slice, Vector]] = OrderedDict()
        self._watermarks: dict[str, int] = {}
        self._slices = 0
        self.epoch = 0
        """Changes when everything is dropped (partitions reassigned): a flush that started
        before must not put what it computed."""

    @property
    def slices(self) -> int:
        return self._slices

    def __contains__(self, key: PeriodKey) -> bool:
        return key in self._periods

    def watermark(self, entity_id: str) -> int | None:
        """Offset up to which this entity's held states are exact; None if it holds none."""
        return self._watermarks.get(entity_id)

    def get(self, key: PeriodKey) -> Mapping[Slice, Vector]:
        return self._periods[key]

    def apply(self, key: PeriodKey, slice_: Slice, difference: Sequence[int]) -> None:
        """Add what one slice gained (its touched subjects' aggregates after minus before)."""
        state = self._periods[key]
        self._periods.move_to_end(key)
        vector = state.get(slice_)
        if vector is None:
            vector = state[_shared(slice_)] = zeros(len(difference))
            self._slices += 1
        for index, change in enumerate(difference):
            if change:
                vector[index] += change

    def put(self, key: PeriodKey, slices: dict[Slice, Vector]) -> None:
        """A state built from the facts (replaces what was held)."""
        previous = self._periods.pop(key, None)
        if previous is not None:
            self._slices -= len(previous)
        self._periods[key] = {_shared(s): packed(vector) for s, vector in slices.items()}
        self._slices += len(slices)

    def advance(self, entity_id: str, offset: int) -> None:
        """Every held state of the entity is now exact up to ``offset``."""
        self._watermarks[entity_id] = offset

    def reset(self) -> None:
        """Forget everything (partitions reassigned: other processes may have written since)."""
        self._periods.clear()
        self._watermarks.clear()
        self._slices = 0
        self.epoch += 1

    def evict(self) -> list[tuple[PeriodKey, dict[Slice, Vector]]]:
        """Drop the least recently touched periods beyond the bound (after a flush has read
        what it changed); what was dropped."""
        dropped = []
        while self._slices > self.max_slices and len(self._periods) > 1:
            key, slices = self._periods.popitem(last=False)
            self._slices -= len(slices)
            dropped.append((key, slices))
        return dropped
