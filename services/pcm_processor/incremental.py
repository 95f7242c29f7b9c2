"""The incremental KPI engine: per flush, work that grows with the batch, not with the history.

For the KPIs whose aggregates are sums over subjects (counts, sums, distinct tickets or
procedures: ``KpiPlan.split``), a flush does not recompute the touched periods from all their
facts. It asks ClickHouse for the aggregates of only the subjects the batch touched, twice: up
to each entity's watermark before the batch (side 0) and up to its newest offset in the batch
(side 1). Every other subject contributes the same to both sides, so adding side 1 and taking
away side 0 moves a state that held every fact up to the old watermark to one that holds every
fact up to the new one, exactly as a recomputation would (dedup, first copy wins, lookups on the
subject's other facts, all inside the same SQL as ``recompute``). ClickHouse subtracts the
sides itself and returns only the slices that moved.

A period the process does not hold (after a start, a rebalance or an eviction) is built from its
facts up to the new watermark instead, once; from then on it follows the batches. A period with
no fact stored before the batch (an entity's new hour or day, which a backlog brings by the tens
of thousands) needs no build: its state is the delta alone (``StoredPeriods`` says which). The
touched rows say which periods they fall in, so the scans and builds run on a second connection
while the delta query runs (a subject-wide lookup's other periods are built after it). Replays
change nothing: a replayed message is at or below the watermark of a state built after it was
stored, and the states are only ever a cache of the facts.

A flush writes the entity-level values (all channels, all services: what the KPI topic carries
and the national benchmark reads) at once. The channel and service slices that moved are
*deferred*: the pipeline writes them with the recomputed KPIs (``take_deferred``), before it
releases the offsets. At 2,700 entities those slices are three quarters of the rows a flush made,
and a row costs about 0.1 ms of the processor's one thread: writing them every second kept the
flushes, hence the entity-level values, ten to twenty seconds behind at 1,000 events/s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pcm_common.domains import Row

from pcm_processor.adapters.kpi_sql import SqlCompiler
from pcm_processor.domain.buckets import BUCKET_COLUMNS, GRAINS, BucketClock
from pcm_processor.domain.kpis import ALL, KpiPlan, KpiRow, SliceKey, kpi_version
from pcm_processor.domain.states import (
    PeriodKey,
    Slice,
    StateStore,
    StoredPeriods,
    Vector,
    packed,
)
from pcm_processor.metrics import (
    PROCESSOR_KPI_BUILD_SECONDS,
    PROCESSOR_KPI_DELTA_SECONDS,
    PROCESSOR_KPI_STATE_BUILDS,
    PROCESSOR_KPI_STATE_SLICES,
    PROCESSOR_KPI_STATES_STARTED_EMPTY,
)

Subject = tuple[str, str]  # (entity, subject id)
Delta = dict[Slice, Vector]  # per slice that moved: side 1 minus side 0
Versioned = Iterable[tuple[KpiRow, int]]
Moved = frozenset[int] | None
"""Positions of the aggregates that changed in a slice; ``ALL_KPIS``: write every KPI."""
ALL_KPIS: Moved = None
ENTITY_LEVEL: Slice = (ALL, ALL)
_NO_OFFSET = 1 << 63
Changed = dict[PeriodKey, dict[Slice, Moved] | None]
"""Per period, what moved in each slice; None: a period built, every slice and KPI."""
Gathered = dict[PeriodKey, tuple[int, list[tuple[Slice, Vector, Moved]]]]
"""Per period, its events (for the version) and the slices to turn into KPI rows."""


class IncrementalKpis:
    """One domain's summable KPIs, kept current batch by batch (see the module docstring)."""

    def __init__(
        self,
        plan: KpiPlan,
        compiler: SqlCompiler,
        store: Any,
        states: StateStore,
        clock: BucketClock,
        query_keys: int,
        query_subjects: int = 5_000,
        build_store: Any = None,
    ) -> None:
        self.plan = plan
        self._compiler = compiler
        self._store = store  # pipeline.Store (not imported: the pipeline imports this module)
        self._build_store = build_store
        """A second connection: the periods a batch's rows show are not held are built on it
        while the delta runs on the first. None: one after the other on ``store``."""
        self._states = states
        self._clock = clock
        self._query_keys = query_keys
        self._query_subjects = query_subjects
        domain = plan.domain
        self._entity = domain.index("entity_id")
        self._subject = domain.index(domain.subject)
        self._month = domain.index("month_start")
        self._buckets = [(g, domain.index(BUCKET_COLUMNS[g])) for g in plan.grains]
        self._offset = domain.index("kafka_offset")
        # A subject-wide lookup (an observation makes the procedure "reworked" in every period)
        # means a new fact can change any period of its subject: read them all.
        self._every_period = bool(plan.subject_lookups)
        self._touched: dict[Subject, set[int]] = {}
        self._periods: set[tuple[str, str, int]] = set()
        """(entity, grain, period start) of the touched rows: the periods a delta will return,
        but for a subject-wide lookup's other periods."""
        self._newest: dict[str, int] = {}
        self._oldest: dict[str, int] = {}
        self._deferred: dict[PeriodKey, dict[Slice, Moved]] = {}
        self._set_aside: Gathered = {}
        """Deferred slices of periods no longer held (evicted, reassigned), as they were."""

    @property
    def states(self) -> StateStore:
        return self._states

    @property
    def pending(self) -> bool:
        """Subjects touched since the last flush."""
        return bool(self._touched)

    @property
    def deferred(self) -> bool:
        """Channel and service slices moved since the last ``take_deferred``."""
        return bool(self._deferred or self._set_aside)

    def touch(self, rows: Sequence[Row]) -> None:
        """Remember the subjects a stored batch touched, and each entity's oldest and newest
        offset."""
        periods = self._periods
        for row in rows:
            entity = row[self._entity]
            self._touched.setdefault((entity, row[self._subject]), set()).add(row[self._month])
            for grain, bucket in self._buckets:
                periods.add((entity, grain, row[bucket]))
            offset = row[self._offset]
            if offset > self._newest.get(entity, -1):
                self._newest[entity] = offset
            if offset < self._oldest.get(entity, _NO_OFFSET):
                self._oldest[entity] = offset

    async def flush(self, computed_at: int) -> Versioned:
        """Bring every touched state up to the batch; the KPI rows of what changed."""
        touched, self._touched = self._touched, {}
        after, self._newest = self._newest, {}
        oldest, self._oldest = self._oldest, {}
        periods, self._periods = self._periods, set()
        if not touched:
            return []
        states = self._states
        epoch = states.epoch
        before = {e: w for e in after if (w := states.watermark(e)) is not None}
        # Messages at or below the watermark are replays, already in the states (the runner
        # drops batches of an earlier assignment, so this is a second guard). The watermark
        # never moves back: the states hold every fact up to it, and a later delta from a lower
        # one would add those facts again.
        after = {e: max(newest, before.get(e, newest)) for e, newest in after.items()}
        # Facts stored before the batch: up to the watermark, or for an entity not held, before
        # its oldest row in the batch (every later fact of it up to ``after`` is in the batch).
        # Offset 0 counts as before in any case: history loaded straight into ClickHouse (the
        # national bench's year) is stored there, and scanning a fact of the batch too is safe.
        since = {e: before[e] + 1 if e in before else max(oldest[e], 1) for e in after}
        deltas, built, scanned, fresh = await self._deltas_and_builds(
            touched, before, after, since, periods
        )
        if states.epoch != epoch:
            before = {}  # reassigned meanwhile: nothing held is current, build everything
            fresh = set()
        changed: Changed = {}
        missing = []
        for key, slices in deltas.items():
            if key in built:
                continue
            if key in fresh:
                # No fact before the batch: the delta (side 0 holds nothing then) is all of it.
                states.put(key, {})
            elif key.entity_id not in before or key not in states:
                missing.append(key)
                continue
            held = states.get(key)
            # A slice new to the state gets every KPI (a count of nothing is a 0 row).
            changed[key] = {
                slice_: _moved(difference) if slice_ in held else ALL_KPIS
                for slice_, difference in slices.items()
            }
            for slice_, difference in slices.items():
                states.apply(key, slice_, difference)
        built.update(await self._build(missing, after, self._store))
        if states.epoch != epoch:
            # The states are gone; what was built is still exact at ``after``: publish it.
            every = {
                k: _gathered(vs, dict.fromkeys(vs, ALL_KPIS))
                for k, vs in built.items()
                if k in deltas
            }
            return self._finalized(every, computed_at)
        # Every touched period is held from now on, those without a delta row too (the batch's
        # rows in them are ones the KPIs filter out, so none of their KPIs moved): the period's
        # next batch then finds it held, not built again.
        for key, vectors in built.items():
            states.put(key, vectors)
            if key in deltas:
                changed[key] = None
        for key in fresh.difference(deltas):
            states.put(key, {})
        for entity, offset in after.items():
            states.advance(entity, offset)
        states.stored.update(scanned)
        for entity, grain, period in periods:
            states.stored.add(PeriodKey(entity, grain, period), self._month_of(period))
        # Gathered before the eviction below, which cannot lose them; the rows are made as they
        # are read, so a flush over every entity never holds all its rows at once.
        now = {
            key: _gathered(states.get(key), slices) for key, slices in self._defer(changed).items()
        }
        rows = self._finalized(now, computed_at)
        for key, dropped in states.evict():
            if key in self._deferred:
                self._put_aside(key, dropped)
        PROCESSOR_KPI_STATE_SLICES.labels(self.plan.domain.name).set(states.slices)
        return rows

    def _defer(self, changed: Changed) -> dict[PeriodKey, dict[Slice, Moved]]:
        """The entity-level part of ``changed``, to write now; the other slices join the
        deferred ones (what moved in them since they were last written)."""
        now: dict[PeriodKey, dict[Slice, Moved]] = {}
        for key, slices in changed.items():
            if slices is None:
                slices = dict.fromkeys(self._states.get(key), ALL_KPIS)
            for slice_, moved in slices.items():
                if slice_ == ENTITY_LEVEL:
                    now[key] = {slice_: moved}
                    continue
                later = self._deferred.setdefault(key, {})
                later[slice_] = _union(later[slice_], moved) if slice_ in later else moved
        return now

    def take_deferred(self, computed_at: int) -> Versioned:
        """The KPI rows of the deferred slices, from a copy of their states taken now: the
        flushes go on while they are written."""
        deferred, self._deferred = self._deferred, {}
        gathered, self._set_aside = self._set_aside, {}
        for key, slices in deferred.items():
            if key in self._states:
                gathered[key] = _gathered(self._states.get(key), slices, copy=True)
        return self._finalized(gathered, computed_at)

    def reset(self) -> None:
        """Partitions reassigned: drop the states, keeping what the deferred slices were, and
        the subjects touched since the last flush (their messages come again)."""
        self._touched, self._newest, self._oldest, self._periods = {}, {}, {}, set()
        for key in list(self._deferred):
            if key in self._states:
                self._put_aside(key, self._states.get(key))
        self._deferred = {}
        self._states.reset()

    def _put_aside(self, key: PeriodKey, state: Mapping[Slice, Vector]) -> None:
        """A period about to be dropped: its deferred slices as they are (no longer updated)."""
        self._set_aside[key] = _gathered(state, self._deferred.pop(key, {}))

    def _fresh(self, periods: set[tuple[str, str, int]], scanned: StoredPeriods) -> set[PeriodKey]:
        """The touched periods not held that surely have no fact stored before the batch (an
        entity's new hour or day): their state is the delta alone, no build needed."""
        states = self._states
        fresh = set()
        for entity, grain, period in periods:
            key = PeriodKey(entity, grain, period)
            if key not in states:
                month = self._month_of(period)
                known = scanned if scanned.scanned(entity, month) else states.stored
                if known.without_facts(key, month):
                    fresh.add(key)
        if fresh:
            PROCESSOR_KPI_STATES_STARTED_EMPTY.labels(self.plan.domain.name).inc(len(fresh))
        return fresh

    def _month_of(self, period_start: int) -> int:
        return self._clock.buckets(period_start).month_start

    async def _deltas_and_builds(
        self,
        touched: dict[Subject, set[int]],
        before: dict[str, int],
        after: dict[str, int],
        since: dict[str, int],
        periods: set[tuple[str, str, int]],
    ) -> tuple[
        dict[PeriodKey, Delta], dict[PeriodKey, dict[Slice, Vector]], StoredPeriods, set[PeriodKey]
    ]:
        """The deltas and, on a second connection at the same time: the periods with facts
        stored before the batch, of the touched months not scanned yet; then the states of the
        touched periods not held that have such facts (the others are fresh)."""
        stored = self._states.stored
        unscanned = sorted(
            {
                (entity, month)
                for entity, _, period in periods
                if not stored.scanned(entity, month := self._month_of(period))
            }
        )
        if self._build_store is None:
            scanned = await self._scan(unscanned, since, self._store)
            fresh = self._fresh(periods, scanned)
            return await self._deltas(touched, before, after), {}, scanned, fresh
        states = self._states

        async def scan_then_build() -> tuple[
            StoredPeriods, set[PeriodKey], dict[PeriodKey, dict[Slice, Vector]]
        ]:
            assert self._build_store is not None
            scanned = await self._scan(unscanned, since, self._build_store)
            fresh = self._fresh(periods, scanned)
            unheld = [
                key
                for key in (PeriodKey(*period) for period in periods)
                if (key.entity_id not in before or key not in states) and key not in fresh
            ]
            return scanned, fresh, await self._build(unheld, after, self._build_store)

        deltas, (scanned, fresh, built) = await asyncio.gather(
            self._deltas(touched, before, after), scan_then_build()
        )
        return deltas, built, scanned, fresh

    async def _scan(
        self, months: list[tuple[str, int]], since: dict[str, int], store: Any
    ) -> StoredPeriods:
        """Per (entity, month), its periods with a fact stored before the batch (a Kafka
        offset below ``since``)."""
        scanned = StoredPeriods(GRAINS)
        grains = self.plan.grains
        for start in range(0, len(months), self._query_keys):
            part = months[start : start + self._query_keys]
            sql = self._compiler.stored_periods(grains, part, {e: since[e] for e, _ in part})
            # A month without any fact before the batch has no row: it is recorded empty.
            found: dict[tuple[str, int], dict[str, Sequence[int]]] = {key: {} for key in part}
            for entity, month, *starts in await store.query("stored periods", sql):
                found[(entity, int(month))] = dict(zip(grains, starts, strict=True))
            for (entity, month), periods in found.items():
                scanned.record(entity, month, periods)
        return scanned

    async def _deltas(
        self, touched: dict[Subject, set[int]], before: dict[str, int], after: dict[str, int]
    ) -> dict[PeriodKey, Delta]:
        found: dict[PeriodKey, Delta] = {}
        keys: dict[tuple[int, str, int], PeriodKey] = {}
        subjects = sorted(touched)
        grains = self.plan.grains
        started = time.perf_counter()
        for start in range(0, len(subjects), self._query_subjects):
            part = subjects[start : start + self._query_subjects]
            entities = {entity for entity, _ in part}
            query = self._compiler.delta(
                grains,
                {subject: touched[subject] for subject in part},
                self._every_period,
                {e: before.get(e, -1) for e in entities},
                {e: after[e] for e in entities},
            )
            rows = await self._store.query("delta", query.sql, query.touched)
            # The hot loop of a flush (a row per grain, period and slice that moved): no
            # per-value work unless a period's subjects span several chunks, which is rare.
            for grain, entity, period, first, second, *difference in rows:
                key = keys.get(at := (grain, entity, period))
                if key is None:
                    key = keys[at] = PeriodKey(entity, grains[grain], int(period))
                slices = found.setdefault(key, {})
                held = slices.get(slice_ := (first, second))
                if held is None:
                    slices[slice_] = difference
                else:
                    slices[slice_] = [a + b for a, b in zip(held, difference, strict=True)]
        PROCESSOR_KPI_DELTA_SECONDS.labels(self.plan.domain.name).observe(
            time.perf_counter() - started
        )
        return found

    async def _build(
        self, keys: list[PeriodKey], after: dict[str, int], store: Any
    ) -> dict[PeriodKey, dict[Slice, Vector]]:
        """States of periods not held, from their facts up to the new watermarks."""
        built: dict[PeriodKey, dict[Slice, Vector]] = {key: {} for key in keys}
        started = time.perf_counter()
        for grain in self.plan.grains:
            chosen = sorted((k.entity_id, k.period_start) for k in keys if k.grain == grain)
            for start in range(0, len(chosen), self._query_keys):
                part = chosen[start : start + self._query_keys]
                months = {self._clock.buckets(period).month_start for _, period in part}
                entities = {entity for entity, _ in part}
                sql = self._compiler.build(grain, part, months, {e: after[e] for e in entities})
                for _side, entity, period, first, second, *vector in await store.query(
                    f"build {grain}", sql
                ):
                    slices = built[PeriodKey(entity, grain, int(period))]
                    slices[(first, second)] = [int(value) for value in vector]
            PROCESSOR_KPI_STATE_BUILDS.labels(grain).inc(len(chosen))
        if keys:
            PROCESSOR_KPI_BUILD_SECONDS.labels(self.plan.domain.name).observe(
                time.perf_counter() - started
            )
        return built

    def _finalized(self, gathered: Gathered, computed_at: int) -> Iterator[tuple[KpiRow, int]]:
        """KPI values of the gathered slices, each with its period's version: of a slice, only
        the KPIs computed from what moved in it (the others keep the value already written)."""
        for key, (events, slices) in gathered.items():
            version = kpi_version(events, computed_at)
            for (channel, service), vector, moved in slices:
                if vector[0] <= 0:
                    continue  # no fact left in this slice (the recomputation has no row)
                slice_key = SliceKey(key.entity_id, key.grain, key.period_start, channel, service)
                for row in self.plan.finalize(slice_key, vector[1:], moved):
                    yield row, version


_MOVED_SETS: dict[int, frozenset[int]] = {}
"""One shared set per combination of moved aggregates: a national flush holds a set for each of
hundreds of thousands of slices (80 MB when each had its own), from a handful of combinations."""


def _gathered(
    state: Mapping[Slice, Vector], moved: Mapping[Slice, Moved], copy: bool = False
) -> tuple[int, list[tuple[Slice, Vector, Moved]]]:
    """A period's events (its entity-level slice's: its KPI rows' version follows them) and
    the slices of ``moved`` it holds, each with what moved in it. ``copy``: the vectors copied,
    for a state that flushes go on updating while the rows are made."""
    chosen = [
        (s, packed(state[s]) if copy else state[s], m) for s, m in moved.items() if s in state
    ]
    entity_level = state.get(ENTITY_LEVEL)
    return (entity_level[0] if entity_level is not None else 0), chosen


def _union(first: Moved, second: Moved) -> Moved:
    if first is None or second is None:
        return ALL_KPIS
    return _shared_set(sum(1 << position for position in first | second))


def _moved(difference: Vector) -> frozenset[int]:
    """Positions of the plan's aggregates (``finalize`` order: after ``n_events``) that moved."""
    mask = 0
    for index, change in enumerate(difference):
        if index and change:
            mask |= 1 << (index - 1)
    return _shared_set(mask)


def _shared_set(mask: int) -> frozenset[int]:
    moved = _MOVED_SETS.get(mask)
    if moved is None:
        moved = _MOVED_SETS[mask] = frozenset(
            position for position in range(mask.bit_length()) if mask >> position & 1
        )
    return moved
