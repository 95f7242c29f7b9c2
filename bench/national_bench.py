"""National-scale benchmark: the processor on 2,700 entities over a year of history.

Runs on the local stack (`make stack-up`), each part on its own topics and ClickHouse databases
(all removed at the end), with `python -m pcm_processor.cli worker` as separate processes reading
a synthetic national registry (`pcm_testkit.national`, through PCM_CATALOGUE_DIR):

1. the registry: the 40 real entities plus generated ones, 2,700 in all, in a temporary folder;
2. a year of attention history (about 335 million facts: the national figure) generated inside
   ClickHouse by `INSERT ... SELECT ... FROM numbers()`, one day per statement, rows produced in
   the table's sort order so that the server writes them without sorting; loaded once, then
   attached to each run's fresh database (hard links, no copy);
3. throughput until current: a backlog of live attention events of today (test kit generator,
   every entity) consumed into ClickHouse: facts/s, events/s until the consumer group has no lag,
   processor CPU per 1,000 events and peak RSS (VmRSS sampled every 0.5 s over the whole run);
4. freshness event -> KPI at sustained rates: paced background load over every entity but the
   probes, while the harness sends the probe entities complete served tickets round-robin and
   a consumer of the KPI topic times the first entity-level ATTENTIONS value (HOUR, DAY, MONTH)
   counting each probe ticket;
5. 3-4 once per KPI engine (--engines, processor setting processor_kpi_engine), side by side;
6. the backlog of 3 with two processor processes in one consumer group against one;
7. a minimal consumer of the same backlog (confluent-kafka -> envelope -> fact row -> columnar
   insert -> commit), the floor the processor's facts path is compared with;
8. a chart of event -> KPI p50/p95 per grain, rate and engine: bench/results/national.svg.

Targets (issue 10): p95 <= 2 s for HOUR and DAY at 10,000 events/s, MONTH <= 60 s; backlog
until KPIs current >= 20,000 events/s per process; RSS <= 500 MB; facts path >= 0.6x the
minimal consumer.
`--quick` is a smoke run (300 entities, 3 days of history, 10 s per rate).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import queue
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib
from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka.partitioner.default import murmur2
from pcm.monitoring.v1 import common_pb2, envelope_pb2
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.envelope import decode
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import configure_logging
from pcm_processor.adapters.clickhouse import columnar
from pcm_processor.domain.buckets import GRAINS, BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.registry import ATTENTION
from pcm_processor.settings import consumer_group
from pcm_testkit import events
from pcm_testkit.generator import CHANNEL_WAIT_FACTOR, CHANNEL_WEIGHT, Generator
from pcm_testkit.kafka import domain_topics
from pcm_testkit.metrics import metric_value, scrape
from pcm_testkit.national import NATIONAL_ENTITIES, daily_tickets, write_national_catalogues
from pcm_testkit.processor import ProcessorProcess, wait_caught_up
from pcm_testkit.waiting import wait_until

matplotlib.use("Agg")  # no display: the chart is only written to a file

BOOTSTRAP = os.environ.get("PCM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
CLICKHOUSE_HOST = os.environ.get("PCM_CLICKHOUSE_HOST", "127.0.0.1")
CLICKHOUSE_PORT = int(os.environ.get("PCM_CLICKHOUSE_PORT", "9000"))
RESULTS = Path(__file__).resolve().parent / "results"
ZONE = "America/Lima"

NATIONAL_FACTS = 335_000_000  # a year of attention facts of Peru's 2,700 entities
FACTS_PER_TICKET = 2.9  # issued, then called and served (3 facts) or abandoned (2): 10% abandon
ABANDON_PER_MILLE = 100
NON_BUSINESS_DAY_VOLUME = 0.15  # weekends and holidays: a few offices and remote channels
OPENING_S, OFFICE_S = 8 * 3600 + 1800, 8 * 3600  # 08:30 to 16:30 local, like the generator
MAX_QUERY_BYTES = 16_000_000  # the history statement carries the registry as array literals
PROGRESS_EVERY_S = 5.0
TICK_S = 0.05  # paced producer: one slice of background load and one probe ticket per tick
PROBE_SERVICE, PROBE_CHANNEL = "ORIENTACION", "PRESENCIAL"  # every entity offers both
UINT64_MAX = 2**64 - 1  # first_copy_version of a fact read at Kafka offset 0 (facts.py)
GRAIN_NAMES = {
    common_pb2.GRAIN_HOUR: "HOUR",
    common_pb2.GRAIN_DAY: "DAY",
    common_pb2.GRAIN_MONTH: "MONTH",
}
TARGET_P95_S = {"HOUR": 2.0, "DAY": 2.0, "MONTH": 60.0}
TARGET_BACKLOG, TARGET_RSS_MB, TARGET_FACTS_RATIO = 20_000, 500, 0.6

Record = tuple[bytes, bytes]
LatencyKey = tuple[str, str, int]  # (entity, grain, period start)

_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line (never the format of a figure line), with the time since start."""
    print(f"  [{time.monotonic() - _STARTED:7.1f} s] {message}", flush=True)


class Progress:
    """Says when a progress line is due: at most every PROGRESS_EVERY_S seconds."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self._last < PROGRESS_EVERY_S:
            return False
        self._last = time.monotonic()
        return True


def clickhouse() -> Client:
    return Client(
        host=CLICKHOUSE_HOST, port=CLICKHOUSE_PORT, settings={"max_query_size": MAX_QUERY_BYTES}
    )


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    entities: int
    history_days: int
    history_facts: int
    backlog: int
    rates: tuple[int, ...]
    seconds: int
    engines: tuple[str, ...]
    probes: int
    seed: int
    straggler_timeout_s: float
    load_workers: int
    keep: bool
    history_from: str | None


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--entities", type=int, help=f"registry size (default {NATIONAL_ENTITIES})")
    parser.add_argument("--history-days", type=int, help="days of history (default 365)")
    parser.add_argument(
        "--history-facts",
        type=int,
        help="facts of history (default: the national density for the entities and days, "
        f"{NATIONAL_FACTS:,} for 2,700 entities and 365 days)",
    )
    parser.add_argument("--backlog", type=int, help="live events of the backlog (200,000)")
    parser.add_argument("--rates", default="1000,10000", help="sustained rates, events/s")
    parser.add_argument("--seconds", type=int, help="duration of each sustained rate (30)")
    parser.add_argument("--engines", default="incremental,recompute", help="KPI engines")
    parser.add_argument("--probes", type=int, default=20, help="probe entities")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--load-workers", type=int, default=2, help="parallel history inserts")
    parser.add_argument(
        "--keep", action="store_true", help="leave the databases and topics for inspection"
    )
    parser.add_argument(
        "--history-from",
        metavar="DATABASE",
        help="reuse the history a --keep run left (same entities, days and seed; it is checked) "
        "instead of loading it again",
    )
    args = parser.parse_args(argv)
    entities = args.entities or (300 if args.quick else NATIONAL_ENTITIES)
    days = args.history_days or (3 if args.quick else 365)
    density = NATIONAL_FACTS / NATIONAL_ENTITIES / 365
    return Options(
        entities=entities,
        history_days=days,
        history_facts=args.history_facts or round(density * entities * days),
        backlog=args.backlog or (20_000 if args.quick else 200_000),
        rates=tuple(int(rate) for rate in args.rates.split(",")),
        seconds=args.seconds or (10 if args.quick else 30),
        engines=tuple(name.strip() for name in args.engines.split(",") if name.strip()),
        probes=args.probes,
        seed=args.seed,
        straggler_timeout_s=60 if args.quick else 120,
        load_workers=args.load_workers,
        keep=args.keep,
        history_from=args.history_from,
    )


# --- the registry as the history statement needs it ------------------------------------------


@dataclass(frozen=True)
class Combo:
    """A (channel, service) an entity offers, with what a fact of it carries."""

    channel: str
    service_id: str
    digital: int
    target_wait_s: int
    target_service_s: int
    model_service_s: int  # typical service time the model draws around
    wait_factor: float  # remote channels queue less (the generator's CHANNEL_WAIT_FACTOR)


@dataclass(frozen=True)
class Registry:
    """Entities in the fact table's sort order (entity_id), each with its Kafka partition, its
    weight and a profile: the list of combos, shared by entities that offer the same."""

    entity_ids: tuple[str, ...]
    regions: tuple[str, ...]
    partitions: tuple[int, ...]
    volumes: tuple[int, ...]
    profile_of: tuple[int, ...]  # 1-based index into profiles
    profiles: tuple[tuple[Combo, ...], ...]


def kafka_partition(entity_id: str, partitions: int) -> int:
    """Where the benchmark's producers (murmur2, as Java and kafka-python) put an entity."""
    hashed: int = murmur2(entity_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def entity_combos(catalogues: Catalogues, view: CatalogueView, entity_id: str) -> tuple[Combo, ...]:
    """Every (channel, service) the entity offers for attention, repeated so that a uniform
    pick follows the generator's channel weights, split evenly among a channel's services."""
    offered: dict[str, list[Combo]] = {}
    for service in catalogues.services_for(entity_id):
        if service.target_wait_minutes is None:
            continue  # not an attention service (the generator's rule)
        for channel in catalogues.service_channels(service.service_id, entity_id):
            wait = view.wait_targets[(service.service_id, channel)]
            assert wait is not None  # the service has a target wait
            offered.setdefault(channel, []).append(
                Combo(
                    channel,
                    service.service_id,
                    int(view.digital(channel)),
                    wait,
                    (service.target_service_minutes or 0) * 60,
                    (service.target_service_minutes or 8) * 60,
                    CHANNEL_WAIT_FACTOR.get(channel, 1.0),
                )
            )
    combos: list[Combo] = []
    for channel, items in offered.items():
        copies = max(1, round(240 * CHANNEL_WEIGHT.get(channel, 0.05) / len(items)))
        combos += [combo for combo in items for _ in range(copies)]
    return tuple(combos)


def registry(catalogues: Catalogues) -> Registry:
    partitions = topic_for_domain(ATTENTION.name).partitions
    entities = sorted(catalogues.entities, key=lambda e: e.entity_id)
    profiles: dict[tuple[Combo, ...], int] = {}
    profile_of = []
    view = CatalogueView.of(catalogues)  # what the processor maps facts with
    for entity in entities:
        combos = entity_combos(catalogues, view, entity.entity_id)
        profile_of.append(profiles.setdefault(combos, len(profiles) + 1))
    return Registry(
        entity_ids=tuple(e.entity_id for e in entities),
        regions=tuple(e.region for e in entities),
        partitions=tuple(kafka_partition(e.entity_id, partitions) for e in entities),
        volumes=tuple(daily_tickets(e.peer_group) for e in entities),
        profile_of=tuple(profile_of),
        profiles=tuple(profiles),
    )


# --- history: a year of facts generated inside ClickHouse --------------------------------------


@dataclass(frozen=True)
class HistoryDay:
    day: dt.date
    day_start: int
    month_start: int
    tickets: tuple[int, ...]  # per entity, in registry order

    @property
    def facts(self) -> float:
        return sum(self.tickets) * FACTS_PER_TICKET


@dataclass(frozen=True)
class History:
    database: str
    rows: int
    load_s: float
    settle_s: float
    days: int
    partitions: tuple[int, ...]


def history_days(
    catalogues: Catalogues, reg: Registry, days: int, facts: int, today: dt.date
) -> list[HistoryDay]:
    """The ``days`` days up to yesterday (local), each with its tickets per entity: the total
    spread over days (business days full, others NON_BUSINESS_DAY_VOLUME) and over entities by
    their daily volume."""
    clock = BucketClock(ZONE)
    dates = [today - dt.timedelta(days=n) for n in range(days, 0, -1)]
    weights = [
        1.0 if catalogues.calendar.is_business_day(d) else NON_BUSINESS_DAY_VOLUME for d in dates
    ]
    per_weight = facts / FACTS_PER_TICKET / sum(weights) / sum(reg.volumes)
    result = []
    for date, weight in zip(dates, weights, strict=True):
        scale = per_weight * weight
        tickets = tuple(round(volume * scale) for volume in reg.volumes)
        result.append(
            HistoryDay(date, clock.period_of(date, "DAY"), clock.period_of(date, "MONTH"), tickets)
        )
    return result


def _array(values: Sequence[Any]) -> str:
    """A ClickHouse array literal (strings quoted; ids and codes need no escaping)."""
    return "[" + ",".join(f"'{v}'" if isinstance(v, str) else repr(v) for v in values) + "]"


def history_statement(database: str, reg: Registry, day: HistoryDay, seed: int) -> str:
    """INSERT ... SELECT of one day's facts, produced in the table's ORDER BY (entity_id,
    month_start, ticket_id, event_id) so the server skips sorting each block: entities in id
    order, fixed-width ticket ids in ticket order, then the steps of each ticket.

    Per ticket (seeded hash ``h``): a combo of its entity's profile, an issue time spread over
    office hours in ticket order, a wait around the target stretched by the entity's quality
    (lognormal-like), 10% abandoned (issued + abandoned: 2 facts) and the rest called and
    served (3 facts). Buckets: the local hour/day/month starts, as the processor computes them
    (Lima has whole-hour offsets, checked on a sample afterwards)."""
    combos = [combo for profile in reg.profiles for combo in profile]
    offsets, start = [], 1
    for profile in reg.profiles:
        offsets.append(start)
        start += len(profile)
    number = day.day.toordinal()
    columns = ", ".join(ATTENTION.columns)
    return f"""
INSERT INTO {database}.attention_events ({columns})
SELECT entity_id, concat(ticket_id, '-', toString(step)) AS event_id, ticket_id,
  multiIf(step = 0, 'TICKET_ISSUED', abandoned, 'TICKET_ABANDONED', step = 1, 'TICKET_CALLED',
          'TICKET_SERVED') AS kind,
  {_array([c.channel for c in combos])}[combo] AS channel,
  {_array([c.service_id for c in combos])}[combo] AS service_id,
  concat({_array(list(reg.regions))}[e], '-SEDE-', toString(bitShiftRight(h, 40) % 4 + 1))
    AS office_id,
  toUInt8(preferential) AS preferential,
  toUInt8({_array([c.digital for c in combos])}[combo]) AS digital,
  toUInt32(target_wait) AS target_wait_s,
  toDateTime(issued) AS issued_at,
  toDateTime(if(step = 0 OR abandoned, 0, issued + wait)) AS called_at,
  toDateTime(multiIf(step = 2, issued + wait + serve, abandoned AND step = 1,
                     issued + greatest(1, toUInt32(wait * 0.7)), 0)) AS finished_at,
  toDateTime({day.day_start} + intDiv(issued - {day.day_start}, 3600) * 3600) AS hour_start,
  toDateTime({day.day_start}) AS day_start,
  toDateTime({day.month_start}) AS month_start,
  greatest(issued_at, greatest(called_at, finished_at)) AS received_at,
  toUInt16({_array(list(reg.partitions))}[e]) AS kafka_partition,
  toUInt64(0) AS kafka_offset,
  toUInt64({UINT64_MAX}) AS first_copy_version,
  toUInt32({_array([c.target_service_s for c in combos])}[combo]) AS target_service_s
FROM (
  SELECT e, step, entity_id, ticket_id, h, combo, abandoned, preferential, target_wait, issued,
    greatest(1, toUInt32(target_wait * quality * 0.8 * exp(0.6 * z1) * if(preferential, 0.4, 1)
      * {_array([c.wait_factor for c in combos])}[combo])) AS wait,
    greatest(1, toUInt32({_array([c.model_service_s for c in combos])}[combo] * exp(0.4 * z2)))
      AS serve
  FROM (
    SELECT e, intDiv(k, 3) AS seq, k % 3 AS step, count_e,
      {_array(list(reg.entity_ids))}[e] AS entity_id,
      concat('h-{number}-', toString(10000 + e), '-', toString(10000000 + seq)) AS ticket_id,
      cityHash64({seed}, {number}, e, seq) AS h,
      {_array(offsets)}[profile] + h % {_array([len(p) for p in reg.profiles])}[profile] AS combo,
      bitShiftRight(h, 20) % 1000 < {ABANDON_PER_MILLE} AS abandoned,
      bitShiftRight(h, 30) % 100 < 8 AS preferential,
      {_array([c.target_wait_s for c in combos])}[combo] AS target_wait,
      {day.day_start + OPENING_S} + intDiv(seq * {OFFICE_S}, count_e)
        + bitShiftRight(h, 44) % greatest(1, intDiv({OFFICE_S}, count_e)) AS issued,
      0.55 + (cityHash64({seed}, entity_id) % 1000) / 952 AS quality,
      intHash64(h) AS g,
      ((g % 1000) + (bitShiftRight(g, 10) % 1000) + (bitShiftRight(g, 20) % 1000) - 1498.5)
        / 577.35 AS z1,
      ((bitShiftRight(g, 30) % 1000) + (bitShiftRight(g, 40) % 1000)
        + (bitShiftRight(g, 50) % 1000) - 1498.5) / 577.35 AS z2
    FROM (
      SELECT toUInt32(number + 1) AS e,
        {_array(list(day.tickets))}[e] AS count_e,
        {_array(list(reg.profile_of))}[e] AS profile
      FROM numbers({len(reg.entity_ids)})
    )
    ARRAY JOIN range(toUInt32(count_e * 3)) AS k
  )
)
WHERE NOT (abandoned AND step = 2)
"""


def stored_rows(client: Client, database: str) -> int:
    """Rows of the fact table's active parts: cheap (no scan), exact once inserts returned."""
    rows: int = client.execute(
        "SELECT sum(rows) FROM system.parts WHERE database = %(db)s "
        "AND table = 'attention_events' AND active",
        {"db": database},
    )[0][0]
    return rows or 0


def load_history(database: str, reg: Registry, days: Sequence[HistoryDay], opts: Options) -> float:
    """Run the day statements on ``opts.load_workers`` connections; return the seconds taken."""
    todo: queue.Queue[HistoryDay] = queue.Queue()
    for day in days:
        todo.put(day)
    failures: list[BaseException] = []

    def work() -> None:
        client = clickhouse()
        try:
            while not failures:
                try:
                    day = todo.get_nowait()
                except queue.Empty:
                    return
                # Small source blocks: each expands (ARRAY JOIN) to a few 100,000 rows.
                client.execute(
                    history_statement(database, reg, day, opts.seed),
                    settings={"max_block_size": 128},
                )
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            client.disconnect()

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(opts.load_workers)]
    for worker in workers:
        worker.start()
    _report_load(database, days, workers, started)
    if failures:
        raise failures[0]
    return time.monotonic() - started


def _report_load(
    database: str, days: Sequence[HistoryDay], workers: Sequence[threading.Thread], started: float
) -> None:
    expected = sum(day.facts for day in days)
    client, progress = clickhouse(), Progress()
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(timeout=0.5)

        if progress.due():
            rows = stored_rows(client, database)
            rate = rows / (time.monotonic() - started)
            say(f"history: {rows:,} of ~{expected:,.0f} facts ({rate:,.0f} rows/s)")
    client.disconnect()


def settle_merges(client: Client, database: str, timeout_s: float = 900) -> float:
    """Wait (with a deadline) until the server has no merge running on the history: its parts
    are then attached to every run as they are, so no run pays for merging the history."""
    started, progress, calm = time.monotonic(), Progress(), 0
    while calm < 3 and time.monotonic() - started < timeout_s:
        merges = client.execute(
            "SELECT count() FROM system.merges WHERE database = %(db)s", {"db": database}
        )[0][0]
        calm = calm + 1 if merges == 0 else 0
        if progress.due():
            say(f"history: waiting for {merges} background merge(s) to end")
        time.sleep(1)
    return time.monotonic() - started


def reused_history(client: Client, database: str, days: Sequence[HistoryDay]) -> int:
    """Rows of a kept history, once checked to be the one these options would load: the same
    days (first and last) and, within 1 %, the same number of facts."""
    rows = stored_rows(client, database)
    expected = sum(day.facts for day in days)
    first, last = client.execute(
        "SELECT toUInt32(min(day_start)), toUInt32(max(day_start)) "
        f"FROM {database}.attention_events"
    )[0]
    if (first, last) != (days[0].day_start, days[-1].day_start) or abs(
        rows - expected
    ) > expected / 100:
        raise SystemExit(
            f"--history-from {database}: {rows:,} facts from {dt.datetime.fromtimestamp(first)} "
            f"to {dt.datetime.fromtimestamp(last)}, not the "
            f"~{expected:,.0f} of {days[0].day} to {days[-1].day} these options load"
        )
    say(f"history: reusing {rows:,} facts of {database}")
    return rows


def check_history(client: Client, database: str, days: Sequence[HistoryDay]) -> None:
    """A sample of facts against the processor's own bucket clock and time order."""
    clock = BucketClock(ZONE)
    for day in (days[0], days[len(days) // 2], days[-1]):
        rows = client.execute(
            "SELECT toUInt32(issued_at), toUInt32(called_at), toUInt32(finished_at), "
            "toUInt32(hour_start), toUInt32(day_start), toUInt32(month_start) "
            f"FROM {database}.attention_events WHERE month_start = toDateTime({day.month_start}) "
            "LIMIT 2000"
        )
        for issued, called, finished, hour, day_start, month in rows:
            buckets = clock.buckets(issued)
            expected = (buckets.hour_start, buckets.day_start, buckets.month_start)
            if (hour, day_start, month) != expected:
                raise AssertionError(f"history bucket {hour, day_start, month} != {expected}")
            if (called and called < issued) or (finished and finished < max(issued, called)):
                raise AssertionError(f"history times out of order: {issued, called, finished}")


def build_history(client: Client, database: str, catalogues: Catalogues, opts: Options) -> History:
    reg = registry(catalogues)
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    days = history_days(catalogues, reg, opts.history_days, opts.history_facts, today)
    say(f"history: {len(days)} days to {days[-1].day}, {len(reg.profiles)} channel profiles")
    if opts.history_from:
        database, load_s, settle_s = opts.history_from, 0.0, 0.0
        rows = reused_history(client, database, days)
    else:
        migrate(client, database)
        load_s = load_history(database, reg, days, opts)
        rows = stored_rows(client, database)
        say(f"history: {rows:,} facts loaded in {load_s:.1f} s; letting merges finish")
        settle_s = settle_merges(client, database)
    check_history(client, database, days)
    partitions = client.execute(
        "SELECT DISTINCT toUInt32(partition) FROM system.parts WHERE database = %(db)s "
        "AND table = 'attention_events' AND active ORDER BY 1",
        {"db": database},
    )
    return History(database, rows, load_s, settle_s, len(days), tuple(p for (p,) in partitions))


# --- live load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    backlog: list[Record]
    background: dict[int, list[Record]]  # per rate
    probes: tuple[str, ...]


def stream_records(
    catalogues: Catalogues, seed: int, run_id: str, count: int, start: int, until: int
) -> list[Record]:
    """About ``count`` attention events from the test kit generator (every entity, weighted by
    volume): tickets issued in [start, until), only their events that happened by ``until``
    (later ones would be refused by the intake), as (key, value) without the envelopes."""
    generator = Generator(catalogues, seed=seed, run_id=run_id)
    # Tickets still in progress at ``until`` lose their later events: ask for more.
    tickets = max(1, round(count * 1.3 / FACTS_PER_TICKET))
    produced = generator.stream(ATTENTION.name, tickets, start, max(1, until - start))
    return [(p.key, p.value) for p in produced if p.time <= until][:count]


def build_workload(catalogues: Catalogues, opts: Options, run: str) -> Workload:
    """The backlog (today's events until now) and, per rate, the background load (tickets of
    the last hour, without the probe entities); both reused by every engine."""
    rng = random.Random(opts.seed)
    probes = tuple(sorted(rng.sample([e.entity_id for e in catalogues.entities], opts.probes)))
    now = int(time.time())
    today = BucketClock(ZONE).buckets(now).day_start
    backlog = stream_records(catalogues, opts.seed, f"{run}b", opts.backlog, today, now)
    excluded = {probe.encode() for probe in probes}
    background = {}
    for rate in opts.rates:
        count = rate * opts.seconds
        records = stream_records(
            catalogues, opts.seed + rate, f"{run}r{rate}", count, now - 3600, now
        )
        background[rate] = [r for r in records if r[0] not in excluded]
    return Workload(backlog, background, probes)


def producer() -> Any:
    """confluent-kafka producer placing keys like kafka-python and Java (murmur2)."""
    return Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )


def send(kafka: Any, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            kafka.produce(topic, value=value, key=key)
            return
        except BufferError:  # local queue full: let deliveries drain
            kafka.poll(0.05)


def produce_all(topic: str, records: Sequence[Record]) -> None:
    kafka = producer()
    for key, value in records:
        send(kafka, topic, key, value)
    if kafka.flush(120) != 0:
        raise RuntimeError(f"backlog not acknowledged by Kafka on {topic}")


def end_offsets(topic: str) -> dict[int, int]:
    partitions = topic_for_domain(ATTENTION.name).partitions
    client = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"offsets-{uuid.uuid4().hex}"})
    try:
        return {
            p: int(client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in range(partitions)
        }
    finally:
        client.close()


# --- a run: fresh topics and database with the history attached -------------------------------


@dataclass
class Stage:
    label: str
    prefix: str
    database: str
    log_dir: Path
    processors: list[ProcessorProcess] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return topic_for_domain(ATTENTION.name).name(self.prefix)

    @property
    def kpi_topic(self) -> str:
        return topic_for_domain("kpi_value").name(self.prefix)

    @property
    def group(self) -> str:
        return consumer_group(self.prefix)

    def processor(self, catalogue_dir: Path, engine: str) -> ProcessorProcess:
        number = len(self.processors) + 1
        process = ProcessorProcess.configured(
            self.prefix,
            self.database,
            self.log_dir / f"processor-{self.label}-{number}.log",
            log_level="WARNING",
            catalogue_dir=str(catalogue_dir),
            processor_kpi_engine=engine,
        )
        self.processors.append(process)
        return process

    def stop(self) -> None:
        for process in self.processors:
            process.stop()


def open_stage(client: Client, run: str, label: str, history: History, log_dir: Path) -> Stage:
    stage = Stage(label, f"natbench-{run}-{label}.", f"pcm_natbench_{run}_{label}", log_dir)
    ensure_topics(BOOTSTRAP, stage.prefix)
    migrate(client, stage.database)
    for partition in history.partitions:
        client.execute(
            f"ALTER TABLE {stage.database}.attention_events ATTACH PARTITION {partition} "
            f"FROM {history.database}.attention_events"
        )
    return stage


# --- process sampling --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class MachineCpu:
    """Jiffies of every core from /proc/stat: the broker, ClickHouse, this bench's producer and
    the processors share the machine, so a phase's busy share says whether it had any left."""

    busy: int
    total: int

    @classmethod
    def now(cls) -> MachineCpu:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        )
        busy = user + nice + system + irq + softirq + steal
        return cls(busy, busy + idle + iowait)

    def busy_since(self, start: MachineCpu) -> float:
        """Share of all cores busy from ``start`` to this sample."""
        return (self.busy - start.busy) / max(1, self.total - start.total)


def machine_note(busy: float, processor_cpu_s: float, seconds: float) -> str:
    cores = os.cpu_count() or 1
    processor = processor_cpu_s / max(seconds, 1e-3) / cores
    return (
        f"machine {100 * busy:.0f}% busy of {cores} cores, the processors "
        f"{100 * processor:.0f}% of them"
    )


class MemoryWatch:
    """Peak VmRSS of processes, sampled every 0.5 s by a thread until ``stop``."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, pid: int) -> None:
        self.peaks.setdefault(pid, 0.0)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in list(self.peaks):
                with contextlib.suppress(OSError):  # exited: its peak is kept
                    self.peaks[pid] = max(self.peaks[pid], rss_mb(pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peaks.values(), default=0.0)


# --- 3. throughput until current ---------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    events: int
    facts_per_s: float
    current_per_s: float
    cpu_facts_ms: float  # per 1,000 events, first insert to last fact
    cpu_current_ms: float  # per 1,000 events, first insert until no lag
    machine: str  # the machine's CPU, first insert until no lag


def total_cpu(processes: Sequence[ProcessorProcess]) -> float:
    return sum(cpu_seconds(p.process.pid) for p in processes if p.process is not None)


def throughput(
    client: Client, stage: Stage, history: History, count: int, watch: MemoryWatch
) -> Throughput:
    """Start the stage's processors on the backlog; time from their first insert to the last
    fact, then until the consumer group has no lag (every KPI written and published)."""
    for process in stage.processors:
        process.start()
        assert process.process is not None
        watch.add(process.process.pid)
    first_at, first_live, cpu_start, machine_start = 0.0, 0, 0.0, MachineCpu.now()
    progress, deadline = Progress(), time.monotonic() + 1800
    while True:
        live = stored_rows(client, stage.database) - history.rows
        now = time.monotonic()
        if live > 0 and not first_at:
            first_at, first_live, cpu_start = now, live, total_cpu(stage.processors)
            machine_start = MachineCpu.now()
        if live >= count:
            break
        for process in stage.processors:
            process.check_alive()
        if now > deadline:
            raise AssertionError(f"{live:,} of {count:,} facts after 30 min")
        if progress.due():
            say(f"{stage.label}: {live:,} of {count:,} backlog facts stored")
        time.sleep(0.05)
    cpu_facts = total_cpu(stage.processors) - cpu_start
    caught_up(stage, timeout_s=1800)
    done, machine = time.monotonic(), MachineCpu.now().busy_since(machine_start)
    counted = max(1, count - first_live)
    cpu_current = total_cpu(stage.processors) - cpu_start
    return Throughput(
        events=count,
        facts_per_s=counted / max(now - first_at, 1e-3),
        current_per_s=counted / max(done - first_at, 1e-3),
        cpu_facts_ms=1e6 * cpu_facts / counted,
        cpu_current_ms=1e6 * cpu_current / counted,
        machine=machine_note(machine, cpu_current, done - first_at),
    )


def caught_up(stage: Stage, timeout_s: float) -> bool:
    """Wait until the group has no lag; False (and a warning) if it never happened."""
    started = time.monotonic()
    try:
        wait_caught_up(
            BOOTSTRAP,
            stage.group,
            domain_topics(stage.prefix),
            timeout_s,
            stable_checks=1,
            processor=stage.processors[0],
        )
    except AssertionError as error:
        say(f"{stage.label}: WARNING {str(error).splitlines()[0]}")
        return False
    say(f"{stage.label}: consumer group without lag ({time.monotonic() - started:.1f} s)")
    return True


# --- 4. freshness event -> KPI ----------------------------------------------------------------


@dataclass(frozen=True)
class ProbeTicket:
    entity: str
    sent_at: float  # monotonic
    event_time: int
    needed: dict[str, int]  # per grain: the ATTENTIONS value that counts this ticket


class KpiWatch:
    """Consumes the KPI topic from its end; keeps when each entity-level ATTENTIONS value of a
    probe entity was first seen, per (entity, grain, period)."""

    def __init__(self, topic: str, probes: Sequence[str]) -> None:
        self.seen: dict[LatencyKey, list[tuple[float, float]]] = {}
        self._keys = {probe.encode() for probe in probes}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "group.id": f"natbench-kpi-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        ends = end_offsets(topic)
        self._consumer.assign([TopicPartition(topic, p, o) for p, o in ends.items()])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=10_000, timeout=0.05):
                value = message.value()
                if message.error() is None and message.key() in self._keys and value:
                    self._observe(value, time.monotonic())

    def _observe(self, value: bytes, at: float) -> None:
        kpi = envelope_pb2.EventEnvelope.FromString(value).kpi_value
        grain = GRAIN_NAMES.get(kpi.grain)
        if kpi.kpi_code != "ATTENTIONS" or kpi.channel or kpi.service_id or grain is None:
            return
        key = (kpi.entity_id, grain, int(kpi.period_start.seconds))
        with self._lock:
            self.seen.setdefault(key, []).append((at, kpi.value))

    def observations(self, key: LatencyKey) -> list[tuple[float, float]]:
        with self._lock:
            return list(self.seen.get(key, ()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def served_baseline(client: Client, database: str, probes: Sequence[str]) -> dict[LatencyKey, int]:
    """Served tickets already stored per probe entity and period from this month on (history
    and backlog): what ATTENTIONS counts before any probe ticket of this phase."""
    clock = BucketClock(ZONE)
    month = clock.buckets(int(time.time())).month_start
    rows = client.execute(
        "SELECT entity_id, toUInt32(hour_start), toUInt32(day_start), toUInt32(month_start), "
        f"uniqExact(ticket_id) FROM {database}.attention_events WHERE entity_id IN %(probes)s "
        f"AND kind = 'TICKET_SERVED' AND month_start >= toDateTime({month}) "
        "GROUP BY entity_id, hour_start, day_start, month_start",
        {"probes": tuple(probes)},
    )
    counts: dict[LatencyKey, int] = {}
    for entity, hour, day, month_start, served in rows:
        for grain, period in zip(GRAINS, (hour, day, month_start), strict=True):
            key = (entity, grain, period)
            counts[key] = counts.get(key, 0) + served
    return counts


class ProbeSender:
    """Complete served tickets (issued, called, served at one instant) to the probe entities,
    round-robin; each knows the ATTENTIONS value per grain that will count it."""

    def __init__(self, probes: Sequence[str], baseline: Mapping[LatencyKey, int], run: str) -> None:
        self.sent: list[ProbeTicket] = []
        self._probes = probes
        self._counts = dict(baseline)
        self._clock = BucketClock(ZONE)
        self._run = run

    def send_next(self, kafka: Any, topic: str) -> None:
        entity = self._probes[len(self.sent) % len(self._probes)]
        ticket = f"PROBE-{self._run}-{len(self.sent) + 1}"
        at = int(time.time())
        needed = {}
        buckets = self._clock.buckets(at)
        for grain in GRAINS:
            key = (entity, grain, buckets.start(grain))
            self._counts[key] = needed[grain] = self._counts.get(key, 0) + 1
        sent_at = time.monotonic()
        for kind, called, finished in (
            ("TICKET_ISSUED", 0, 0),
            ("TICKET_CALLED", at, 0),
            ("TICKET_SERVED", at, at),
        ):
            envelope = events.attention_event(
                entity, ticket, kind, PROBE_SERVICE, PROBE_CHANNEL, at, called, finished
            )
            send(kafka, topic, entity.encode(), envelope.SerializeToString())
        self.sent.append(ProbeTicket(entity, sent_at, at, needed))


def paced_run(topic: str, background: Sequence[Record], rate: int, probes: ProbeSender) -> float:
    """Background load at ``rate`` events/s plus one probe ticket per tick; the achieved rate."""
    kafka = producer()
    per_tick = max(1, round(rate * TICK_S))
    started = time.monotonic()
    sent = 0
    for tick, index in enumerate(range(0, len(background), per_tick)):
        delay = started + tick * TICK_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for key, value in background[index : index + per_tick]:
            send(kafka, topic, key, value)
        probes.send_next(kafka, topic)
        kafka.poll(0)
        sent += len(background[index : index + per_tick]) + 3
    kafka.flush(60)
    return sent / (time.monotonic() - started)


def latencies(tickets: Sequence[ProbeTicket], watch: KpiWatch) -> dict[str, list[float]]:
    """Per grain, each probe ticket's time from send to the first value counting it (probes
    without such a value yet are left out)."""
    result: dict[str, list[float]] = {grain: [] for grain in GRAINS}
    clock = BucketClock(ZONE)
    cache: dict[LatencyKey, list[tuple[float, float]]] = {}
    for ticket in tickets:
        buckets = clock.buckets(ticket.event_time)
        for grain in GRAINS:
            key = (ticket.entity, grain, buckets.start(grain))
            seen = cache.setdefault(key, watch.observations(key))
            at = next(
                (t for t, v in seen if v >= ticket.needed[grain] and t >= ticket.sent_at), None
            )
            if at is not None:
                result[grain].append(at - ticket.sent_at)
    return result


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float
    max: float
    samples: int
    missing: int


def summary(values: Sequence[float], expected: int) -> Latency:
    ordered = sorted(values)
    if not ordered:
        return Latency(math.nan, math.nan, math.nan, 0, expected)
    if len(ordered) == 1:
        return Latency(ordered[0], ordered[0], ordered[0], 1, expected - 1)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")  # within the samples
    return Latency(cuts[49], cuts[94], ordered[-1], len(ordered), expected - len(ordered))


@dataclass(frozen=True)
class Freshness:
    rate: int
    achieved: float
    grains: dict[str, Latency]
    machine: str  # the machine's CPU, from the first event until every probe value was seen


def freshness(
    client: Client, stage: Stage, workload: Workload, rate: int, opts: Options
) -> Freshness:
    """One sustained rate on the running processor: background load plus probe tickets, then
    wait (deadline) until a KPI value counted every probe ticket at every grain."""
    baseline = served_baseline(client, stage.database, workload.probes)
    watch = KpiWatch(stage.kpi_topic, workload.probes)
    probes = ProbeSender(workload.probes, baseline, f"{stage.label}-{rate}")
    started, machine_start = time.monotonic(), MachineCpu.now()
    cpu_start = total_cpu(stage.processors)
    try:
        say(f"{stage.label}: {rate:,} events/s for {opts.seconds} s with probe tickets")
        achieved = paced_run(stage.topic, workload.background[rate], rate, probes)
        expected = len(probes.sent)
        deadline, progress = time.monotonic() + opts.straggler_timeout_s, Progress()
        while True:
            found = latencies(probes.sent, watch)
            waiting = sum(expected - len(values) for values in found.values())
            if not waiting or time.monotonic() > deadline:
                break
            stage.processors[0].check_alive()
            if progress.due():
                say(f"{stage.label}: {waiting} probe values still to come")
            time.sleep(0.5)
    finally:
        watch.close()
    machine = machine_note(
        MachineCpu.now().busy_since(machine_start),
        total_cpu(stage.processors) - cpu_start,
        time.monotonic() - started,
    )
    caught_up(stage, timeout_s=1800)
    return Freshness(rate, achieved, {g: summary(found[g], expected) for g in GRAINS}, machine)


# --- 7. minimal consumer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Minimal:
    events: int
    per_s: float
    cpu_ms: float  # per 1,000 events


def minimal_consumer(
    client: Client, stage: Stage, catalogues: Catalogues, ends: Mapping[int, int]
) -> Minimal:
    """The least a facts path must do: consume, parse, map to the fact row, one columnar insert
    per fetch of up to 5,000 events, commit; over the backlog's offsets only."""
    table = f"{stage.database}.minimal_facts"
    client.execute(f"CREATE TABLE {table} AS {stage.database}.attention_events")
    sql = f"INSERT INTO {table} ({', '.join(ATTENTION.columns)}) VALUES"
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock(ZONE))
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"{stage.prefix}minimal",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(stage.topic, p, 0) for p in ends])
    position = dict.fromkeys(ends, 0)
    count, first, deadline = 0, 0, time.monotonic() + 900
    started, cpu = 0.0, 0.0
    while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        rows = []
        for message in consumer.consume(num_messages=5_000, timeout=1.0):
            partition, offset = message.partition() or 0, message.offset() or 0
            if message.error() is not None or offset >= ends[partition]:
                continue  # past the backlog: the freshness phases' events
            position[partition] = offset + 1
            envelope = decode(message.value(), ATTENTION.name)
            rows.append(ATTENTION.map(envelope, Position(partition, offset), ctx))
        if rows:
            client.execute(sql, columnar(rows, len(ATTENTION.columns)), columnar=True)
            done = [TopicPartition(stage.topic, p, o) for p, o in position.items() if o]
            consumer.commit(offsets=done, asynchronous=False)
            count += len(rows)
            if not first:  # timed like the processor: from the first insert to the last
                first, started, cpu = count, time.monotonic(), time.process_time()
    elapsed, used = time.monotonic() - started, time.process_time() - cpu
    consumer.close()
    counted = max(1, count - first)
    return Minimal(count, counted / max(elapsed, 1e-3), 1e6 * used / counted)


# --- one engine, two processes -----------------------------------------------------------------


@dataclass
class EngineResult:
    engine: str
    backlog: Throughput
    rss_mb: float
    fresh: list[Freshness]
    stats: str
    check: str
    minimal: Minimal | None = None


def kpi_check(client: Client, database: str) -> str:
    """Entity-level ATTENTIONS as stored against the served tickets in the facts, for today
    and this month (history included): once the group has no lag they must be equal."""
    buckets = BucketClock(ZONE).buckets(int(time.time()))
    found = []
    for grain, column, period in (
        ("DAY", "day_start", buckets.day_start),
        ("MONTH", "month_start", buckets.month_start),
    ):
        ((equal, lower, higher),) = client.execute(f"""
SELECT countIf(v = s), countIf(v < s), countIf(v > s) FROM (
  SELECT entity_id, toFloat64(uniqExact(ticket_id)) AS s FROM {database}.attention_events
  WHERE kind = 'TICKET_SERVED' AND month_start = toDateTime({buckets.month_start})
    AND {column} = toDateTime({period})
  GROUP BY entity_id
) ANY LEFT JOIN (
  SELECT entity_id, argMax(value, version) AS v FROM {database}.kpi_values
  WHERE kpi_code = 'ATTENTIONS' AND channel = '' AND service_id = '' AND grain = '{grain}'
    AND period_start = toDateTime({period})
  GROUP BY entity_id
) USING entity_id""")
        wrong = f" ({lower} lower, {higher} higher)" if lower or higher else ""
        found.append(f"{grain} {equal:,}/{equal + lower + higher:,}{wrong}")
    return "ATTENTIONS = served tickets of the facts for " + ", ".join(found) + " entities"


def processor_stats(process: ProcessorProcess) -> str:
    """Means over the whole run from the processor's /metrics (what the figures come from)."""
    try:
        page = scrape(process.metrics_url)
    except OSError as error:
        return f"no /metrics: {error}"

    def mean_ms(name: str, **labels: str) -> str:
        total = metric_value(page, f"{name}_sum", labels)
        count = metric_value(page, f"{name}_count", labels)
        return f"{1000 * total / count:,.0f}" if count else "-"

    batches = metric_value(page, "pcm_processor_batch_size_count")
    size = metric_value(page, "pcm_processor_batch_size_sum") / batches if batches else 0
    recompute = "/".join(mean_ms("pcm_processor_kpi_recompute_seconds", grain=g) for g in GRAINS)
    attention = {"domain": "attention"}
    delta = mean_ms("pcm_processor_kpi_delta_seconds", **attention)
    flush = mean_ms("pcm_processor_kpi_flush_seconds", **attention)
    build = mean_ms("pcm_processor_kpi_build_seconds", **attention)
    events = metric_value(page, "pcm_processor_events_total") or 1
    deltas = {"query": "delta"}
    read = metric_value(page, "pcm_processor_query_rows_read_sum", deltas)
    per_delta = read / (metric_value(page, "pcm_processor_query_rows_read_count", deltas) or 1)
    kpi_rows = metric_value(page, "pcm_processor_kpi_rows_total")
    built = "/".join(
        f"{metric_value(page, 'pcm_processor_kpi_state_builds_total', {'grain': g}):,.0f}"
        for g in GRAINS
    )
    started_empty = metric_value(page, "pcm_processor_kpi_states_started_empty_total", attention)
    return (
        f"mean batch {size:,.0f} events, fact insert "
        f"{mean_ms('pcm_processor_insert_seconds', table='attention_events')} ms, KPI recompute "
        f"H/D/M {recompute} ms, KPI flush {flush} ms (delta, every grain: {delta} ms; "
        f"states built, when any: {build} ms), "
        f"dead letters {metric_value(page, 'pcm_processor_dead_letter_total'):,.0f}, "
        f"state slices held {metric_value(page, 'pcm_processor_kpi_state_slices'):,.0f}, "
        f"periods built {metric_value(page, 'pcm_processor_kpi_state_builds_total'):,.0f} "
        f"(H/D/M {built}; started empty, without a build: {started_empty:,.0f}), "
        f"facts read per delta {per_delta:,.0f} ({read / events:,.1f} per event stored), "
        f"KPI rows written per event {kpi_rows / events:,.1f}"
    )


def run_engine(
    ctx: RunContext, engine: str, workload: Workload, with_minimal: bool
) -> EngineResult:
    stage = ctx.stage(engine)
    stage.processor(ctx.catalogue_dir, engine)
    say(f"{engine}: producing the backlog of {len(workload.backlog):,} events")
    produce_all(stage.topic, workload.backlog)
    ends = end_offsets(stage.topic)
    watch = MemoryWatch()
    try:
        backlog = throughput(ctx.client, stage, ctx.history, len(workload.backlog), watch)
        say(f"{engine}: backlog {backlog.facts_per_s:,.0f} events/s into ClickHouse")
        fresh = [freshness(ctx.client, stage, workload, rate, ctx.opts) for rate in ctx.opts.rates]
        stats = processor_stats(stage.processors[0])
        check = kpi_check(ctx.client, stage.database)
    finally:
        stage.stop()
        peak = watch.stop()
    minimal = None
    if with_minimal:
        say("minimal consumer on the same backlog")
        minimal = minimal_consumer(ctx.client, stage, ctx.catalogues, ends)
    return EngineResult(engine, backlog, peak, fresh, stats, check, minimal)


def run_two_processes(ctx: RunContext, engine: str, workload: Workload) -> Throughput:
    stage = ctx.stage("two")
    for _ in range(2):
        stage.processor(ctx.catalogue_dir, engine)
    say(f"two processes ({engine}): producing the backlog")
    produce_all(stage.topic, workload.backlog)
    watch = MemoryWatch()
    try:
        return throughput(ctx.client, stage, ctx.history, len(workload.backlog), watch)
    finally:
        stage.stop()
        watch.stop()


@dataclass
class RunContext:
    run: str
    opts: Options
    client: Client
    catalogues: Catalogues
    catalogue_dir: Path
    log_dir: Path
    history: History
    stages: list[Stage] = field(default_factory=list)

    def stage(self, label: str) -> Stage:
        stage = open_stage(self.client, self.run, label, self.history, self.log_dir)
        self.stages.append(stage)
        return stage


# --- report ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def print_history(history: History, opts: Options) -> None:
    if not history.load_s:
        print(f"history reused     {history.rows:,} facts of {history.database}")
        return
    rate = history.rows / history.load_s
    print(
        f"history load       {history.rows:,} facts in {history.load_s:.1f} s = {rate:,.0f} rows/s "
        f"({history.days} days, {opts.entities:,} entities; then {history.settle_s:.0f} s "
        "until no merge ran)"
    )


def print_engine(result: EngineResult) -> None:
    tag, backlog = f"[{result.engine}]", result.backlog
    print(
        f"{tag} backlog facts     {backlog.facts_per_s:>10,.0f} events/s into ClickHouse "
        f"({backlog.events:,} events)"
    )
    print(
        f"{tag} until KPIs current {backlog.current_per_s:>9,.0f} events/s "
        f"(until the consumer group had no lag; target >= {TARGET_BACKLOG:,} per process: "
        f"{verdict(backlog.current_per_s >= TARGET_BACKLOG)})"
    )
    print(
        f"{tag} processor CPU     {backlog.cpu_facts_ms:>10.1f} ms per 1,000 events (facts path; "
        f"{backlog.cpu_current_ms:.1f} ms until KPIs current)"
    )
    print(f"{tag} CPU until current   {backlog.machine}")
    print(
        f"{tag} peak RSS          {result.rss_mb:>10,.0f} MB (whole run; target <= "
        f"{TARGET_RSS_MB} MB: {verdict(result.rss_mb <= TARGET_RSS_MB)})"
    )
    print(f"{tag} processor metrics: {result.stats}")
    print(f"{tag} KPI check: {result.check}")
    for fresh in result.fresh:
        for grain, lat in fresh.grains.items():
            target = TARGET_P95_S[grain]
            judged = f": {verdict(lat.p95 <= target)}" if fresh.rate == 10_000 else ""
            print(
                f"{tag} event->KPI {grain:<5} at {fresh.rate:,}/s  p50 {lat.p50:.2f} s  "
                f"p95 {lat.p95:.2f} s  max {lat.max:.2f} s  n={lat.samples}"
                f"{f' ({lat.missing} never seen)' if lat.missing else ''}  "
                f"(achieved {fresh.achieved:,.0f} events/s; target p95 <= {target:g} s "
                f"at 10,000/s{judged})"
            )
        print(f"{tag} CPU at {fresh.rate:,}/s  {fresh.machine} (until every probe value came)")


def engine_figures(result: EngineResult) -> dict[str, float]:
    """Every figure of one engine by name, for the side-by-side table."""
    found = {
        "backlog facts (events/s)": result.backlog.facts_per_s,
        "until KPIs current (events/s)": result.backlog.current_per_s,
        "CPU facts path (ms/1,000)": result.backlog.cpu_facts_ms,
        "CPU until current (ms/1,000)": result.backlog.cpu_current_ms,
        "peak RSS (MB)": result.rss_mb,
    }
    for fresh in result.fresh:
        for grain, lat in fresh.grains.items():
            found[f"{grain} p50 at {fresh.rate:,}/s (s)"] = lat.p50
            found[f"{grain} p95 at {fresh.rate:,}/s (s)"] = lat.p95
    return found


def print_side_by_side(results: Sequence[EngineResult]) -> None:
    """Each figure per engine and the ratio of the first engine (new) to the last (old)."""
    if len(results) < 2:
        return
    new, old = results[0], results[-1]
    names = [r.engine for r in results]
    print(f"\n=== engines side by side: ratio {new.engine} / {old.engine} (new / old) ===")
    print(f"  {'figure':32}" + "".join(f"{name:>14}" for name in names) + f"{'ratio':>9}")
    tables = [engine_figures(r) for r in results]
    for figure, first in tables[0].items():
        last = tables[-1][figure]
        ratio = first / last if last and not math.isnan(last) else math.nan
        cells = "".join(f"{table[figure]:>14,.2f}" for table in tables)
        print(f"  {figure:32}{cells}{ratio:>8.2f}x")


def print_scaling(one: Throughput, two: Throughput, engine: str) -> None:
    ratio = two.facts_per_s / one.facts_per_s
    print(
        f"two processes      {two.facts_per_s:>10,.0f} events/s into ClickHouse, one group "
        f"({engine}; one process {one.facts_per_s:,.0f}: {ratio:.2f}x)"
    )
    print(
        f"  two processes until KPIs current {two.current_per_s:,.0f} events/s "
        f"(one process {one.current_per_s:,.0f}: {two.current_per_s / one.current_per_s:.2f}x; "
        f"{two.machine})"
    )


def print_minimal(minimal: Minimal, results: Sequence[EngineResult]) -> None:
    print(
        f"minimal consumer   {minimal.per_s:>10,.0f} events/s, CPU {minimal.cpu_ms:.1f} ms per "
        f"1,000 events ({minimal.events:,} events: confluent-kafka -> envelope -> fact row -> "
        "columnar insert -> commit)"
    )
    for result in results:
        ratio = result.backlog.facts_per_s / minimal.per_s
        print(
            f"facts path [{result.engine}]  {ratio:.2f}x the minimal consumer "
            f"({result.backlog.facts_per_s:,.0f} vs {minimal.per_s:,.0f} events/s; target >= "
            f"{TARGET_FACTS_RATIO}x: {verdict(ratio >= TARGET_FACTS_RATIO)})"
        )


def chart(results: Sequence[EngineResult], rates: Sequence[int], path: Path) -> None:
    """Event -> KPI p50 and p95 per grain (groups), engine (bars) and rate (panels)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(rates), figsize=(6 * len(rates), 4.5), squeeze=False)
    width = 0.8 / (2 * len(results))
    palette = plt.get_cmap("tab20")  # 20 colours in pairs: dark (p95), light (p50)
    for axis, rate in zip(axes[0], rates, strict=True):
        for number, result in enumerate(results):
            fresh = next(f for f in result.fresh if f.rate == rate)
            for shade, quantile in enumerate(("p95", "p50")):
                index = 2 * number + 1 - shade  # p50 left of p95
                offset = (index - (2 * len(results) - 1) / 2) * width
                axis.bar(
                    [g + offset for g in range(len(GRAINS))],
                    [getattr(fresh.grains[grain], quantile) for grain in GRAINS],
                    width,
                    label=f"{result.engine} {quantile}",
                    color=palette((2 * number + shade) % 20),
                )
        for g, grain in enumerate(GRAINS):  # the p95 targets
            axis.hlines(TARGET_P95_S[grain], g - 0.45, g + 0.45, colors="k", linestyles="dashed")
        axis.set_xticks(range(len(GRAINS)), GRAINS)
        axis.set_yscale("log")
        axis.set_ylabel("event -> KPI published (s)")
        axis.set_title(f"{rate:,} events/s (dashed: p95 target)")
    axes[0][0].legend(fontsize="small", loc="upper left")
    figure.suptitle("National benchmark: freshness of entity-level ATTENTIONS")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def log_problems(log_dir: Path) -> None:
    """Error lines of the processors' logs (they ran at WARNING), so a run shows them."""
    for log in sorted(log_dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        bad = [line for line in lines if "error" in line.lower() or "Traceback" in line]
        if bad:
            print(f"  {log.name}: {len(bad)} error line(s), first: {bad[0][:300]}")


# --- main --------------------------------------------------------------------------------------


def cleanup(run: str) -> None:
    """Drop every database, topic and consumer group of this run; a failure is reported, not
    raised (leftovers are all named after the run)."""
    try:
        drop_databases(run)
    except Exception as error:
        say(f"cleanup: databases pcm_natbench_{run}_* left: {error}")
    try:
        delete_kafka(f"natbench-{run}-")
    except Exception as error:
        say(f"cleanup: topics natbench-{run}-* left: {error}")


def drop_databases(run: str) -> None:
    """Retried for a while: other test suites on this machine may be restarting ClickHouse."""

    def dropped() -> bool:
        client = clickhouse()
        try:
            for (database,) in client.execute(
                "SELECT name FROM system.databases WHERE name LIKE %(p)s",
                {"p": f"pcm_natbench_{run}_%"},
            ):
                client.execute(f"DROP DATABASE IF EXISTS {database}")
        finally:
            client.disconnect()
        return True

    wait_until(dropped, 120, "ClickHouse unreachable", interval_s=2, ignore=(NetworkError,))


def delete_kafka(prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if topics:
        for future in admin.delete_topics(topics).values():
            future.result()
    listed = admin.list_consumer_groups().result()
    groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    if groups:
        for future in admin.delete_consumer_groups(groups).values():
            future.result()


@contextmanager
def scratch(run: str) -> Iterator[tuple[Path, Path]]:
    """A temporary folder for the catalogue; the logs stay in /tmp for inspection."""
    log_dir = Path(tempfile.gettempdir()) / f"pcm-national-bench-{run}"
    log_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pcm-national-") as tmp:
        yield Path(tmp), log_dir


def measure(ctx: RunContext, workload: Workload) -> tuple[list[EngineResult], Throughput]:
    results = [
        run_engine(ctx, engine, workload, with_minimal=index == 0)
        for index, engine in enumerate(ctx.opts.engines)
    ]
    two = run_two_processes(ctx, ctx.opts.engines[0], workload)
    return results, two


def report(ctx: RunContext, results: Sequence[EngineResult], two: Throughput) -> None:
    opts = ctx.opts
    print(
        f"\n=== national benchmark: {opts.entities:,} entities, {opts.history_days} days of "
        f"history, backlog {opts.backlog:,}, rates {', '.join(f'{r:,}' for r in opts.rates)} "
        f"events/s for {opts.seconds} s, {opts.probes} probe entities ==="
    )
    print_history(ctx.history, opts)
    for result in results:
        print_engine(result)
    print_scaling(results[0].backlog, two, results[0].engine)
    minimal = results[0].minimal
    if minimal is not None:
        print_minimal(minimal, results)
    print_side_by_side(results)
    path = RESULTS / "national.svg"
    chart(results, opts.rates, path)
    print(f"\nchart: {path}")
    print(f"processor logs: {ctx.log_dir}")
    log_problems(ctx.log_dir)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    configure_logging("WARNING")  # migrations and topic creation: not figures, keep quiet
    run = uuid.uuid4().hex[:8]
    history_name = f"pcm_natbench_{run}_history"
    client = clickhouse()
    with scratch(run) as (tmp, log_dir):
        catalogue_dir = write_national_catalogues(tmp / "catalogues", opts.entities, opts.seed)
        catalogues = load_catalogues(catalogue_dir)
        say(f"registry: {len(catalogues.entities):,} entities in {catalogue_dir}")
        try:
            history = build_history(client, history_name, catalogues, opts)
            ctx = RunContext(run, opts, client, catalogues, catalogue_dir, log_dir, history)
            say("generating the live events (test kit generator)")
            workload = build_workload(catalogues, opts, run)
            results, two = measure(ctx, workload)
        finally:
            if opts.keep:
                say(
                    f"kept: databases pcm_natbench_{run}_*, topics natbench-{run}-* "
                    f"(next run: --history-from {history_name})"
                )
            else:
                cleanup(run)
        report(ctx, results, two)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
