"""KPI states of the incremental engine (pure): what a processor holds in memory per period.

A state is, per (entity, grain, period) and per slice, the vector ``[n_events, *aggregates]`` of
a plan whose aggregates are sums over subjects (``KpiPlan.split``). Every state of one entity is
exact up to the same Kafka offset, the entity's *watermark* (one entity's events share one
partition, so its offsets are ordered): a flush moves the watermark of each entity it touches
and, in the same step, adds to each held state what the batch changed (``apply``) or puts a state
built from the facts up to the new watermark (``put``).

States are a cache of what the facts say, never the only copy: a process that restarts, or gets
other partitions, starts empty and builds each state from the facts the first time it is
touched. Memory is bounded (``max_slices``) by evicting the least recently touched periods of
the finest grain first: an entity's past hours are rarely touched again, while its day and month
are touched by each of its events until they end, and every build reads the entity's month. With
one recency order for all grains, the day and month of the many entities with few events fell
out between two of their events and were built again each time (a quarter of a national
backlog's builds).
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass

from pcm_processor.domain.buckets import GRAINS

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
        self._periods: dict[str, OrderedDict[PeriodKey, dict[Slice, Vector]]] = {
            grain: OrderedDict() for grain in GRAINS
        }
        """Per grain, finest first, the held periods from the least recently touched."""
        self._watermarks: dict[str, int] = {}
        self._slices = 0
        self.stored = StoredPeriods(GRAINS)
        """Which periods hold facts up to each entity's watermark: dropped with the watermarks."""
        self.epoch = 0
        """Changes when everything is dropped (partitions reassigned): a flush that started
        before must not put what it computed."""

    @property
    def slices(self) -> int:
        return self._slices

    def __contains__(self, key: PeriodKey) -> bool:
        return key in self._periods[key.grain]

    def watermark(self, entity_id: str) -> int | None:
        """Offset up to which this entity's held states are exact; None if it holds none."""
        return self._watermarks.get(entity_id)

    def get(self, key: PeriodKey) -> Mapping[Slice, Vector]:
        return self._periods[key.grain][key]

    def apply(self, key: PeriodKey, slice_: Slice, difference: Sequence[int]) -> None:
        """Add what one slice gained (its touched subjects' aggregates after minus before)."""
        held = self._periods[key.grain]
        state = held[key]
        held.move_to_end(key)
        vector = state.get(slice_)
        if vector is None:
            vector = state[_shared(slice_)] = zeros(len(difference))
            self._slices += 1
        for index, change in enumerate(difference):
            if change:
                vector[index] += change

    def put(self, key: PeriodKey, slices: dict[Slice, Vector]) -> None:
        """A state built from the facts (replaces what was held)."""
        held = self._periods[key.grain]
        previous = held.pop(key, None)
        if previous is not None:
            self._slices -= len(previous)
        held[key] = {_shared(s): packed(vector) for s, vector in slices.items()}
        self._slices += len(slices)

    def advance(self, entity_id: str, offset: int) -> None:
        """Every held state of the entity is now exact up to ``offset``."""
        self._watermarks[entity_id] = offset

    def reset(self) -> None:
        """Forget everything (partitions reassigned: other processes may have written since)."""
        for held in self._periods.values():
            held.clear()
        self._watermarks.clear()
        self._slices = 0
        self.stored.reset()
        self.epoch += 1

    def evict(self) -> list[tuple[PeriodKey, dict[Slice, Vector]]]:
        """Drop periods beyond the bound, the finest grain's least recently touched first (after
        a flush has read what it changed); what was dropped."""
        dropped = []
        periods = sum(len(held) for held in self._periods.values())
        for held in self._periods.values():
            while self._slices > self.max_slices and held and periods > 1:
                key, slices = held.popitem(last=False)
                self._slices -= len(slices)
                periods -= 1
                dropped.append((key, slices))
        return dropped


_SLOT = 15 * 60
"""Period starts of every grain fall on 15-minute UTC slots (see ``buckets``): a period's bit
in its month's mask is its slot counted from the month's start."""


class StoredPeriods:
    """Per (entity, month) scanned, the periods that hold a fact up to the entity's watermark.

    A period a batch touches that is not held is built from its facts; but an entity's new hour
    or day has no fact stored before the batch, so its state is exactly what the batch adds. A
    flush scans each touched month it has not scanned yet for the periods with facts stored
    before the batch (one light query per entity and month, instead of a build per new hour,
    each of which reads the entity's whole month), then adds the periods of every batch it
    stores: a period whose bit is off needs no build. Bits only ever get set until ``reset``,
    so they cover, at worst, more periods than hold facts (one build too many), never fewer.
    Held as one integer mask per grain (a month's hours in 3 KB of bits, not 744 Python
    integers); the oldest months are forgotten beyond ``limit`` (scanned again when touched).
    """

    def __init__(self, grains: Sequence[str], limit: int = 20_000) -> None:
        self._grains = {grain: index for index, grain in enumerate(grains)}
        self._limit = limit
        self._masks: dict[tuple[str, int], list[int]] = {}

    def scanned(self, entity_id: str, month_start: int) -> bool:
        return (entity_id, month_start) in self._masks

    def without_facts(self, key: PeriodKey, month_start: int) -> bool:
        """Whether the period surely holds no fact up to its entity's watermark."""
        masks = self._masks.get((key.entity_id, month_start))
        if masks is None:
            return False
        return not masks[self._grains[key.grain]] >> _position(key.period_start, month_start) & 1

    def record(
        self, entity_id: str, month_start: int, periods: Mapping[str, Sequence[int]]
    ) -> None:
        """A scan's result: per grain, the periods with a fact (a grain left out has none)."""
        masks = [0] * len(self._grains)
        for grain, starts in periods.items():
            for start in starts:
                masks[self._grains[grain]] |= 1 << _position(start, month_start)
        self._masks[(entity_id, month_start)] = masks
        self._forget_oldest()

    def update(self, other: StoredPeriods) -> None:
        """The months ``other`` scanned, as it found them."""
        for (entity_id, month_start), masks in other._masks.items():
            self._masks[(entity_id, month_start)] = list(masks)
        self._forget_oldest()

    def _forget_oldest(self) -> None:
        while len(self._masks) > self._limit:
            del self._masks[next(iter(self._masks))]

    def add(self, key: PeriodKey, month_start: int) -> None:
        """A period that now holds a fact (a stored batch's), if its month was scanned."""
        masks = self._masks.get((key.entity_id, month_start))
        if masks is not None:
            masks[self._grains[key.grain]] |= 1 << _position(key.period_start, month_start)

    def reset(self) -> None:
        self._masks.clear()


def _position(period_start: int, month_start: int) -> int:
    return (period_start - month_start) // _SLOT
