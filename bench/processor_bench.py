"""Processor benchmark: events/s into ClickHouse, freshness at a sustained rate, and baselines.

Runs `python -m pcm_processor.cli worker` as its own process (as deployed) on the local stack,
with its own topics and database (removed at the end), and prints:

1. throughput: a backlog of attention events (time-ordered, 40 catalogue entities, event times
   as dense as the target rate) consumed from Kafka into ClickHouse, facts and KPIs included;
2. freshness at a sustained rate: a paced producer sends events at --rate for --seconds; each
   event's freshness is the moment its fact became visible in ClickHouse (polled every 100 ms by
   Kafka offset) minus the moment it was sent, so p50/p95 include Kafka, batching and the insert;
3. the same fact rows inserted one per INSERT (naive, measured on a few thousand rows) and in
   one bulk insert (clickhouse-driver columnar, and clickhouse-client reading TSV), as ratios.

Needs the local stack (`make stack-up`). Targets from issue 5: >= 20,000 events/s per process,
freshness p95 <= 2 s at 10,000 events/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaProducer
from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_processor.adapters.clickhouse import columnar
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position, Row
from pcm_processor.domain.registry import ATTENTION
from pcm_processor.settings import consumer_group
from pcm_testkit.generator import Generator, Produced
from pcm_testkit.kafka import domain_topics, produce
from pcm_testkit.metrics import metric_value, scrape
from pcm_testkit.processor import ProcessorProcess, wait_caught_up

BOOTSTRAP = os.environ.get("PCM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
TABLE_COLUMNS = ", ".join(ATTENTION.columns)


def events(count: int, rate: int, seed: int, start: int) -> list[Produced]:
    """About ``count`` attention events whose times advance at ``rate`` events/s."""
    generator = Generator(load_catalogues(), seed=seed, run_id=f"b{seed}")
    tickets = count * 10 // 29  # 2.9 events per ticket on average
    return generator.stream(ATTENTION.name, tickets, start, max(1, count // rate))


def fact_rows(produced: Sequence[Produced]) -> list[Row]:
    catalogues = load_catalogues()
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    return [ATTENTION.map(p.envelope, Position(0, i), ctx) for i, p in enumerate(produced)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_facts(client: Client, db: str) -> int:
    result: int = client.execute(f"SELECT count() FROM {db}.attention_events")[0][0]
    return result


def throughput(
    client: Client, db: str, processor: ProcessorProcess, total: int, group: str, topics: list[str]
) -> dict[str, float]:
    """Start the processor on a backlog; time from its first insert to the last fact."""
    processor.start()
    assert processor.process is not None
    first_at, first_count = 0.0, 0
    cpu_start = 0.0
    while True:
        facts = count_facts(client, db)
        now = time.monotonic()
        if facts and not first_at:
            first_at, first_count = now, facts
            cpu_start = cpu_seconds(processor.process.pid)
        if facts >= total:
            break
        if not processor.alive():
            raise RuntimeError(processor.log_tail())
        time.sleep(0.05)
    facts_done = now
    cpu_used = cpu_seconds(processor.process.pid) - cpu_start
    wait_caught_up(BOOTSTRAP, group, topics, timeout_s=300, stable_checks=1, processor=processor)
    caught_up = time.monotonic()
    counted = total - first_count
    return {
        "events": total,
        "facts_per_s": counted / (facts_done - first_at),
        "with_kpis_per_s": counted / (caught_up - first_at),
        "cpu_ms_per_1000": 1000 * cpu_used / counted * 1000,
    }


class PacedProducer:
    """Sends at a fixed rate and remembers when each (partition, offset) was sent."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: dict[tuple[int, int], float] = {}
        self.acked: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()
        self._producer = KafkaProducer(
            bootstrap_servers=BOOTSTRAP.split(","),
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
        )

    def run(self, produced: Sequence[Produced], rate: int) -> float:
        tick = 0.05
        per_tick = max(1, int(rate * tick))
        started = time.monotonic()
        for index in range(0, len(produced), per_tick):
            due = started + (index // per_tick) * tick
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for item in produced[index : index + per_tick]:
                sent_at = time.monotonic()
                future = self._producer.send(self.topic, key=item.key, value=item.value)
                future.add_callback(self._record, sent_at)
        self._producer.flush()
        elapsed = time.monotonic() - started
        self._producer.close()
        return len(produced) / elapsed

    def _record(self, sent_at: float, metadata: Any) -> None:
        acked_at = time.monotonic()
        with self._lock:
            self.sent[(metadata.partition, metadata.offset)] = sent_at
            self.acked[(metadata.partition, metadata.offset)] = acked_at


def freshness(
    client: Client, db: str, topic: str, produced: Sequence[Produced], rate: int
) -> dict[str, float]:
    """Per-event visibility latency at a sustained rate (processor already running)."""
    base = dict(
        client.execute(
            f"SELECT kafka_partition, max(kafka_offset) FROM {db}.attention_events "
            "GROUP BY kafka_partition"
        )
    )
    paced = PacedProducer(topic)
    visible: dict[int, list[tuple[int, float]]] = {}
    done = threading.Event()

    def poll() -> None:
        poller = Client(host="127.0.0.1", port=9000)
        while not done.is_set():
            rows = poller.execute(
                f"SELECT kafka_partition, max(kafka_offset) FROM {db}.attention_events "
                "GROUP BY kafka_partition"
            )
            seen = time.monotonic()
            for partition, offset in rows:
                visible.setdefault(partition, []).append((offset, seen))
            time.sleep(0.1)
        poller.disconnect()

    poller = threading.Thread(target=poll)
    poller.start()
    achieved = paced.run(produced, rate)
    deadline = time.monotonic() + 120
    while len(paced.sent) < len(produced) or not all(
        visible.get(p, [(-1, 0.0)])[-1][0] >= max(o for (q, o) in paced.sent if q == p)
        for p in {q for q, _ in paced.sent}
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    done.set()
    poller.join()
    latencies, after_ack = [], []
    for (partition, offset), sent_at in paced.sent.items():
        if offset <= base.get(partition, -1):
            continue
        seen = next((t for o, t in visible.get(partition, []) if o >= offset), None)
        if seen is not None:
            latencies.append(seen - sent_at)
            after_ack.append(seen - paced.acked[(partition, offset)])
    latencies.sort()
    after_ack.sort()
    quantiles = statistics.quantiles(latencies, n=100)
    from_ack = statistics.quantiles(after_ack, n=100)
    return {
        "achieved_rate": achieved,
        "measured_events": len(latencies),
        "p50_s": quantiles[49],
        "p95_s": quantiles[94],
        "max_s": latencies[-1],
        "ack_p50_s": from_ack[49],
        "ack_p95_s": from_ack[94],
    }


def processor_stats(processor: ProcessorProcess) -> dict[str, str]:
    """Means of the processor's own histograms over the whole run (from /metrics)."""
    page = scrape(processor.metrics_url)

    def mean(name: str, labels: dict[str, str] | None = None) -> float:
        total = metric_value(page, f"{name}_sum", labels)
        count = metric_value(page, f"{name}_count", labels)
        return total / count if count else float("nan")

    inserts = "pcm_processor_insert_seconds"
    return {
        "mean batch size": f"{mean('pcm_processor_batch_size'):,.0f} events",
        "mean fact insert": f"{1000 * mean(inserts, {'table': 'attention_events'}):.0f} ms",
        "mean KPI insert": f"{1000 * mean(inserts, {'table': 'kpi_values'}):.0f} ms",
        **{
            f"mean {step} {grain}": (
                f"{1000 * mean(f'pcm_processor_kpi_{metric}_seconds', {'grain': grain}):.0f} ms"
            )
            for step, metric in (("recompute", "recompute"),)
            for grain in ("HOUR", "DAY", "MONTH")
        },
        "mean KPI delta": (
            f"{1000 * mean('pcm_processor_kpi_delta_seconds', {'domain': 'attention'}):.0f} ms"
        ),
        "periods built": f"{metric_value(page, 'pcm_processor_kpi_state_builds_total'):,.0f}",
    }


def naive_rate(client: Client, db: str, rows: Sequence[Row]) -> float:
    client.execute(f"CREATE TABLE {db}.naive AS {db}.attention_events")
    sql = f"INSERT INTO {db}.naive ({TABLE_COLUMNS}) VALUES"
    started = time.perf_counter()
    for row in rows:
        client.execute(sql, [list(row)], types_check=False)
    return len(rows) / (time.perf_counter() - started)


def bulk_rates(client: Client, db: str, rows: Sequence[Row]) -> tuple[float, float]:
    client.execute(f"CREATE TABLE {db}.bulk_driver AS {db}.attention_events")
    client.execute(f"CREATE TABLE {db}.bulk_tsv AS {db}.attention_events")
    started = time.perf_counter()
    client.execute(
        f"INSERT INTO {db}.bulk_driver ({TABLE_COLUMNS}) VALUES",
        columnar(rows, len(ATTENTION.columns)),
        columnar=True,
        types_check=False,
    )
    driver = len(rows) / (time.perf_counter() - started)
    # ClickHouse 18.16 reads a DateTime in TSV as exactly ten digits of unix time.
    times = [c.endswith(("_at", "_start")) for c in ATTENTION.columns]
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as tsv:
        for row in rows:
            cells = (
                f"{v:010d}" if is_time else str(v) for v, is_time in zip(row, times, strict=True)
            )
            tsv.write("\t".join(cells) + "\n")
    started = time.perf_counter()
    with open(tsv.name, "rb") as data:
        subprocess.run(
            [
                "clickhouse-client",
                "--query",
                f"INSERT INTO {db}.bulk_tsv ({TABLE_COLUMNS}) FORMAT TSV",
            ],
            stdin=data,
            check=True,
        )
    native = len(rows) / (time.perf_counter() - started)
    os.unlink(tsv.name)
    return driver, native


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="backlog for throughput")
    parser.add_argument("--rate", type=int, default=10_000, help="sustained rate, events/s")
    parser.add_argument("--seconds", type=int, default=20, help="duration of the sustained run")
    parser.add_argument("--naive", type=int, default=3_000, help="rows for the naive insert")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="processor setting without the PCM_ prefix, e.g. processor_kpi_interval_s=2",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)

    run = uuid.uuid4().hex[:8]
    prefix, db = f"bench-{run}.", f"pcm_bench_{run}"
    ensure_topics(BOOTSTRAP, prefix)
    client = Client(host="127.0.0.1", port=9000)
    migrate(client, db)
    topic = topic_for_domain("attention").name(prefix)
    group, topics = consumer_group(prefix), domain_topics(prefix)
    log = Path(tempfile.gettempdir()) / f"pcm-processor-bench-{run}.log"
    processor = ProcessorProcess.configured(
        prefix, db, log, **{"log_level": "WARNING", **overrides}
    )
    now = int(time.time())
    try:
        backlog = events(args.events, 20_000, seed=1, start=now - 3_600)
        produce(BOOTSTRAP, topic, [(p.key, p.value) for p in backlog])
        result = throughput(client, db, processor, len(backlog), group, topics)
        sustained = events(args.rate * args.seconds, args.rate, seed=2, start=now)
        fresh = freshness(client, db, topic, sustained, args.rate)
        stats = processor_stats(processor)
        rows = fact_rows(backlog)
        naive = naive_rate(client, db, rows[: args.naive])
        driver, native = bulk_rates(client, db, rows)
    finally:
        processor.stop()
        client.execute(f"DROP DATABASE IF EXISTS {db}")
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
        admin.close()

    rate = result["facts_per_s"]
    print(
        f"processor throughput  {rate:>10,.0f} events/s into ClickHouse "
        f"({result['events']:,} events backlog; target >= 20,000)"
    )
    print(
        f"  incl. KPIs current  {result['with_kpis_per_s']:>10,.0f} events/s "
        f"(until the consumer group had no lag)"
    )
    print(f"  processor CPU       {result['cpu_ms_per_1000']:>10.1f} ms per 1,000 events")
    print(
        f"freshness at {args.rate:,}/s  p50 {fresh['p50_s']:.2f} s  p95 {fresh['p95_s']:.2f} s  "
        f"max {fresh['max_s']:.2f} s  (achieved {fresh['achieved_rate']:,.0f} events/s "
        f"for {args.seconds} s, {fresh['measured_events']:,} events; target p95 <= 2 s)"
    )
    print(
        f"  from broker ack     p50 {fresh['ack_p50_s']:.2f} s  p95 {fresh['ack_p95_s']:.2f} s  "
        "(Kafka -> processor -> ClickHouse only, without the producer's own delay)"
    )
    for name, value in stats.items():
        print(f"  {name:<22}{value}")
    print(f"naive per-event insert {naive:>9,.0f} rows/s -> processor is {rate / naive:,.1f}x")
    print(f"bulk insert (driver)  {driver:>10,.0f} rows/s -> processor is {rate / driver:.2f}x")
    print(f"bulk insert (TSV)     {native:>10,.0f} rows/s -> processor is {rate / native:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
