"""`make demo`: the platform's main job, end to end, on the local stack.

1. fresh demo database and topics, migrations; 2. a token per catalogue entity; 3. the intake,
complaints and indicators services (each with its worker) and the processor as their own
processes; 4. a synthetic national dataset pushed through the public gRPC APIs, per entity with
its own token (attentions, procedures, two months of complaints, last month's indicator
values); 5. wait until the complaints worker has published every complaint event and flagged
the overdue ones, and every event is a fact with its KPIs; 6. a KPI table, overdue complaints
per entity, indicator values reported, a CSV and a chart; 7. stop the services.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaAdminClient
from pcm.monitoring.v1 import benchmark_pb2, benchmark_service_pb2
from pcm_benchmark import reads
from pcm_benchmark.client import BenchmarkClient, CatalogueClient
from pcm_common import domains
from pcm_common.auth import ROLE_HOLDERS, Role, TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import configure_logging
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.postgres.client import create_database
from pcm_common.push.client import PushClient, push_call
from pcm_common.settings import Settings
from pcm_common.startup import migrate_postgres
from pcm_complaints.client import ComplaintsClient
from pcm_complaints.metrics import OUTBOX, OVERDUE_JOB_SUCCESS
from pcm_indicators.client import IndicatorsClient
from pcm_intake.client import IntakeClient
from pcm_processor.domain.registry import DOMAINS, fact_domain
from pcm_processor.settings import ProcessorSettings
from pcm_surveys.client import SurveysClient
from pcm_testkit.generator import Dataset, Generator
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from pcm_demo import processor_lag
from pcm_demo.platform import Layout, Platform
from pcm_demo.report import (
    LIMA,
    day_start,
    draw_chart,
    draw_satisfaction,
    print_satisfaction,
    print_table,
    read_day,
    read_satisfaction,
    write_csv,
)
from pcm_demo.summary import print_summary, summary_month

REPO = Path(__file__).resolve().parents[2]
LAYOUT = Layout()
INTAKE_TARGET = LAYOUT.target("intake")
COMPLAINTS_TARGET = LAYOUT.target("complaints")
INDICATORS_TARGET = LAYOUT.target("indicators")
SURVEYS_TARGET = LAYOUT.target("surveys")
BENCHMARK_TARGET = LAYOUT.target("benchmark")
DASHBOARD_URL = LAYOUT.dashboard_url
COMPLAINTS_WORKER_METRICS = LAYOUT.metrics_url("complaints-worker")
# The local stack's Prometheus (deploy/local/stack.py), which scrapes the default ports above.
PROMETHEUS_URL = f"http://127.0.0.1:{os.environ.get('PCM_PROMETHEUS_PORT', '9090')}"
# The push service of each gRPC service name (domains.PushRpc.service), and where it listens.
CLIENTS: dict[str, tuple[type[PushClient], str]] = {
    "IntakeService": (IntakeClient, INTAKE_TARGET),
    "ComplaintsService": (ComplaintsClient, COMPLAINTS_TARGET),
    "IndicatorsService": (IndicatorsClient, INDICATORS_TARGET),
    "SurveysService": (SurveysClient, SURVEYS_TARGET),
}
BATCH = 500
# The processor reports its lag this often: the demo sees it caught up within about a second.
LAG_REFRESH_S = 1.0
PROCESSOR_TIMEOUT_S = 300


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pcm-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--days", type=int, default=22, help="business days of activity (22: about a month)"
    )
    parser.add_argument("--scale", type=float, default=0.15, help="volume multiplier")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--out", type=Path, default=REPO / ".stack" / "demo")
    ending = parser.add_mutually_exclusive_group()
    ending.add_argument(
        "--no-wait",
        action="store_true",
        help="stop the services after the summary instead of serving the dashboard until Ctrl-C "
        "(for scripts)",
    )
    ending.add_argument(
        "--keep-running",
        action="store_true",
        help="exit after the summary and leave every service running",
    )
    return parser.parse_args(argv)


def step(number: int, text: str) -> None:
    print(f"[{number}/7] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        clickhouse_database="pcm_demo",
        postgres_database="pcm_demo",
        topic_prefix="demo.",
        token_file=args.out / "tokens.json",
        log_level="WARNING",
    )
    processor = ProcessorSettings(**settings.model_dump(), processor_lag_refresh_s=LAG_REFRESH_S)
    configure_logging("WARNING")
    catalogues = load_catalogues(settings.catalogue_dir)

    step(1, "fresh demo database and topics, schema migrations")
    reset_demo_state(settings)
    migrate(connect(settings, database="default"), settings.clickhouse_database)
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)

    step(2, f"issuing a token for each of the {len(catalogues.entities)} catalogue entities")
    tokens = issue_tokens(settings, catalogues)
    national = TokenStore(settings.token_file).issue(
        ROLE_HOLDERS[Role.NATIONAL], Role.NATIONAL, label="demo: oversight body"
    )
    keep_secret(args.out / "national.token", national)
    keep_secret(args.out / "entity-tokens.json", json.dumps(tokens, indent=1))

    step(3, "starting intake, complaints, indicators, surveys, benchmark (with workers), processor")
    services = start_services(processor, args.out, national)
    try:
        seed = args.seed if args.seed is not None else int(time.time())
        step(4, f"generating {args.days} business days of national activity (seed {seed})")
        dataset = Generator(catalogues, seed).dataset(args.days, datetime.now(UTC), args.scale)
        accepted = push(dataset, tokens)
        pushed_at = time.time()
        step(5, "waiting for the complaints worker, then the processor (facts and KPIs)")
        accepted["complaint"] += wait_for_complaints_worker(settings, pushed_at, services, args.out)
        processed = sum(accepted.get(name, 0) for name in processor.domain_names)
        wait_for_processor(processor, processed, pushed_at, services, args.out)
        check_facts(settings, accepted, args.out)
        step(6, "report")
        report(settings, catalogues, args.out)
        overdue = overdue_report(settings)
        indicators_report(settings)
        surveys_report(settings)
        satisfaction_report(settings, catalogues, args.out)
        month = summary_month(datetime.now(LIMA).date())
        results = benchmark_report(settings, catalogues, tokens, services, args.out, month)
        catalogues_report(catalogues, national)
        print_summary(month, results, catalogues, overdue, PROMETHEUS_URL)
        if not (args.no_wait or args.keep_running):
            serve_until_interrupted(services, args.out)
    finally:
        if not args.keep_running:
            step(7, "stopping the services")
            services.stop_all()
        else:
            step(
                7,
                "services left running (gRPC :50051-:50055, dashboard :8088, metrics :9101-:9110)",
            )
    return 0


def serve_until_interrupted(services: Platform, out: Path) -> None:
    """The dashboard (and every service) stays up for the user until Ctrl-C."""
    print(
        f"\n  Dashboard: {DASHBOARD_URL}/entrar (sign in with the national token in "
        f"{out / 'national.token'} or an entity's from {out / 'entity-tokens.json'}).\n"
        "  Every service keeps running; press Ctrl-C to stop them.",
        flush=True,
    )
    try:
        while not services.stopped():
            time.sleep(1)
        print(f"error: {', '.join(services.stopped())} stopped; see the logs in {out}")
    except KeyboardInterrupt:
        print()


def reset_demo_state(settings: Settings) -> None:
    """A fresh demo: its ClickHouse database, its PostgreSQL database (the event-id ledger: a
    seed given twice is pushed afresh) and its topics."""
    connect(settings, database="default").execute(
        f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
    )
    create_database(settings, replace=True)
    migrate_postgres(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)

    def demo_topics() -> list[str]:
        return [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]

    try:
        stale = demo_topics()
        if stale:
            admin.delete_topics(stale)
            # Deletion is asynchronous in Kafka: recreate them only once they are gone.
            wait_until(lambda: not demo_topics(), 60, "the old demo topics were not deleted")
    finally:
        admin.close()


def issue_tokens(settings: Settings, catalogues: Catalogues) -> dict[str, str]:
    settings.token_file.unlink(missing_ok=True)
    store = TokenStore(settings.token_file)
    return {e.entity_id: store.issue(e.entity_id, label="demo") for e in catalogues.entities}


def service_env(processor: ProcessorSettings) -> dict[str, str]:
    return {
        **os.environ,
        "PCM_CLICKHOUSE_DATABASE": processor.clickhouse_database,
        "PCM_TOPIC_PREFIX": processor.topic_prefix,
        "PCM_TOKEN_FILE": str(processor.token_file),
        "PCM_INTAKE_RATE_LIMIT_EVENTS_PER_S": "0",
        "PCM_COMPLAINTS_RATE_LIMIT_EVENTS_PER_S": "0",
        # Overdue complaints are flagged within seconds of the push, not the next minute.
        "PCM_COMPLAINTS_OVERDUE_INTERVAL_S": "2",
        # The event-id ledger of this run (recreated by each run, like the topics).
        "PCM_POSTGRES_DATABASE": processor.postgres_database,
        "PCM_PROCESSOR_LAG_REFRESH_S": str(processor.processor_lag_refresh_s),
        # Results follow the KPIs within seconds (the default looks every 30 s).
        "PCM_BENCHMARK_REFRESH_S": "2",
    }


def start_services(processor: ProcessorSettings, out: Path, national_token: str) -> Platform:
    """Every process of the platform, started and answering."""
    platform = Platform(
        LAYOUT,
        service_env(processor),
        out,
        # Only the benchmark worker holds the national credential (it reads every entity's
        # reports).
        extra_env={"benchmark-worker": {"PCM_BENCHMARK_TOKEN": national_token}},
        announce=lambda line: print(f"      {line}"),
    )
    platform.start_all()
    try:
        wait_until(platform.healthy, 60, "the services did not become healthy", platform, out)
    except BaseException:
        platform.stop_all()  # the caller never gets the platform to stop: no process left behind
        raise
    return platform


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    failure: str,
    platform: Platform | None = None,
    out: Path | None = None,
) -> None:
    """Poll ``condition`` until it holds; exit with ``failure`` after ``timeout_s`` or as soon
    as one of ``services`` stopped."""
    deadline = time.monotonic() + timeout_s
    logs = f"; see the logs in {out}" if out else ""
    while time.monotonic() < deadline:
        if condition():
            return
        stopped = platform.stopped() if platform else []
        if stopped:
            raise SystemExit(f"error: {failure}: {', '.join(stopped)} stopped{logs}")
        time.sleep(0.5)
    raise SystemExit(f"error: {failure} within {timeout_s:.0f} s{logs}")


def push(dataset: Dataset, tokens: dict[str, str]) -> dict[str, int]:
    """Every entity pushes its own events with its own token, in batches; accepted per domain."""
    accepted = dict.fromkeys(dataset.events, 0)
    with tqdm(total=dataset.total, unit="event", desc="      pushing", file=sys.stdout) as bar:
        for entity_id, token in tokens.items():
            clients = {name: kind(target, token) for name, (kind, target) in CLIENTS.items()}
            for domain, per_entity in dataset.events.items():
                rpc = domains.domain(domain).push
                assert rpc is not None
                send = push_call(clients[rpc.service], domain)
                events = per_entity.get(entity_id, [])
                for start in range(0, len(events), BATCH):
                    batch = events[start : start + BATCH]
                    accepted[domain] += send(batch).accepted
                    bar.update(len(batch))
            for client in clients.values():
                client.close()
    counts = ", ".join(f"{count:,} {domain}" for domain, count in accepted.items())
    print(f"      accepted {counts} events")
    return accepted


def _gauge_name(gauge: Gauge) -> str:
    # As the worker declares it: a rename there cannot silently break the demo.
    (metric,) = gauge.describe()
    return str(metric.name)


def wait_for_complaints_worker(
    settings: Settings, pushed_at: float, services: Platform, out: Path
) -> int:
    """Until an overdue pass ran after the push and the outbox is empty; the OVERDUE events
    the worker added (they are facts too)."""

    def done() -> bool:
        try:
            with urllib.request.urlopen(COMPLAINTS_WORKER_METRICS, timeout=5) as page:
                text = page.read().decode()
        except OSError:  # not serving /metrics yet
            return False
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        passed = values.get(_gauge_name(OVERDUE_JOB_SUCCESS), 0.0)
        return passed > pushed_at and values.get(_gauge_name(OUTBOX.pending), 1.0) == 0

    wait_until(done, PROCESSOR_TIMEOUT_S, "the complaints worker did not publish", services, out)
    with connect_postgres(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM complaints WHERE overdue_on IS NOT NULL"
        ).fetchone()
    overdue = int(row[0]) if row else 0
    print(f"      complaints worker: outbox published, {overdue:,} complaints flagged overdue")
    return overdue


def wait_for_processor(
    processor: ProcessorSettings,
    total: int,
    pushed_at: float,
    services: Platform,
    out: Path,
) -> None:
    """Poll the processor's /metrics until a lag refresh made after the last push shows zero
    lag on its topics; the bar counts the pushed events it has finished (facts and KPIs)."""
    url = LAYOUT.metrics_url("processor")
    prefix = processor.topic_prefix
    topics = [topic_for_domain(name).name(prefix) for name in processor.domain_names]
    with tqdm(total=total, unit="event", desc="      processed", file=sys.stdout) as bar:

        def caught_up() -> bool:
            try:
                lag = processor_lag.read(url)
            except OSError:  # not serving /metrics yet
                return False
            if lag.refreshed_at > pushed_at:
                bar.update(max(0, total - lag.behind(topics) - bar.n))
            return lag.caught_up(topics, since=pushed_at)

        failure = "the processor did not catch up"
        wait_until(caught_up, PROCESSOR_TIMEOUT_S, failure, services, out)


def check_facts(settings: Settings, accepted: dict[str, int], out: Path) -> None:
    """Every accepted event is one fact (a caught-up processor has written them all)."""
    client = connect(settings)
    for domain, count in accepted.items():
        if domain not in DOMAINS:
            continue  # not stored as facts (indicator values live in their service's book)
        table = fact_domain(domain).table
        ((stored,),) = client.execute(f"SELECT uniqExact(event_id) FROM {table}")
        if stored != count:
            raise SystemExit(
                f"error: {stored:,} {domain} facts for {count:,} accepted events; "
                f"see the processor log in {out}"
            )


def report(settings: Settings, catalogues: Catalogues, out: Path) -> None:
    client = connect(settings)
    # The newest *complete* day: today is still going on and would look artificially quiet.
    ((latest,),) = client.execute(
        "SELECT max(period_start) FROM kpi_values WHERE grain = 'DAY' "
        "AND kpi_code = 'ATTENTIONS' AND period_start < %(today)s",
        {"today": day_start(datetime.now(LIMA).date())},
    )
    day = latest.replace(tzinfo=UTC).astimezone(LIMA).date()
    days = read_day(client, settings.clickhouse_database, day, catalogues)
    print_table(days, day)
    write_csv(days, out / "kpis.csv")
    draw_chart(days, day, out / "served_within_target.png")
    print(f"\n      table: {out / 'kpis.csv'}\n      chart: {out / 'served_within_target.png'}")
    print(
        "      Prometheus: http://127.0.0.1:9090 "
        "(pcm_intake_*, pcm_complaints_*, pcm_processor_* metrics)"
    )


def overdue_report(settings: Settings, shown: int = 10) -> list[tuple[str, int]]:
    """Open complaints past due per entity (the complaint book), most first."""
    with connect_postgres(settings) as conn:
        rows = conn.execute(
            "SELECT entity_id, count(*) FILTER (WHERE stage = 'REGISTERED'), "
            "count(*) FILTER (WHERE stage = 'REGISTERED' AND overdue_on IS NOT NULL), count(*) "
            "FROM complaints GROUP BY entity_id "
            "ORDER BY 3 DESC, 2 DESC, entity_id"
        ).fetchall()
    total = sum(row[2] for row in rows)
    print(f"\n      Complaints open past their due date: {total:,} at {len(rows)} entities")
    print(f"      {'entity':<16}{'open':>8}{'overdue':>10}{'complaints':>12}")
    for entity, open_, overdue, complaints in rows[:shown]:
        print(f"      {entity:<16}{open_:>8}{overdue:>10}{complaints:>12}")
    return [(entity, overdue) for entity, _, overdue, _ in rows]


def indicators_report(settings: Settings) -> None:
    """What entities reported: current values per status, and corrections kept as history."""
    with connect_postgres(settings) as conn:
        rows = conn.execute(
            "SELECT status, count(*), count(DISTINCT entity_id) FROM indicator_reports "
            "GROUP BY status ORDER BY status"
        ).fetchall()
    shown = ", ".join(f"{count:,} {status.lower()}" for status, count, _ in rows)
    entities = max((row[2] for row in rows), default=0)
    print(f"\n      Indicator values reported by {entities} entities: {shown}")


def surveys_report(settings: Settings) -> None:
    """What the survey books hold: collections, responses, responses beyond those offered."""
    with connect_postgres(settings) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM survey_collections), count(*), "
            "count(*) FILTER (WHERE beyond_offered), count(DISTINCT entity_id) "
            "FROM survey_responses"
        ).fetchone()
    collections, responses, beyond, entities = row if row else (0, 0, 0, 0)
    print(
        f"      Survey collections: {collections:,}; responses: {responses:,} at {entities} "
        f"entities ({beyond:,} beyond the people offered, flagged)"
    )


def satisfaction_report(settings: Settings, catalogues: Catalogues, out: Path) -> None:
    """Satisfaction per driver per entity, from the survey KPIs, with a heat map."""
    entities = read_satisfaction(connect(settings), settings.clickhouse_database, catalogues)
    print_satisfaction(entities, catalogues)
    draw_satisfaction(entities, catalogues, out / "satisfaction.png")
    print(f"      chart: {out / 'satisfaction.png'}")


def benchmark_report(
    settings: Settings,
    catalogues: Catalogues,
    tokens: dict[str, str],
    services: Platform,
    out: Path,
    month: dt.date,
) -> list[reads.StoredResult]:
    """The month's assessment, once the benchmark worker wrote it after the KPIs settled; the
    best entity's own view of its peers through the BenchmarkService. The month's results."""
    client = connect(settings)
    db = settings.clickhouse_database

    def current() -> bool:
        written = client.execute(
            f"SELECT max(computed_at) FROM {db}.kpi_values "
            "WHERE grain = 'MONTH' AND period_start = %(start)s",
            {"start": day_start(month)},
        )[0][0]
        assessed = client.execute(
            f"SELECT max(computed_at) FROM {db}.benchmark_results "
            "WHERE grain = 'MONTH' AND period_start = %(m)s",
            {"m": month},
        )[0][0]
        return bool(written) and assessed >= written

    wait_until(current, 120, "the benchmark worker did not assess the month", services, out)
    results = reads.results(client, db, "MONTH", month)
    best = min((r for r in results if r.overall), key=lambda r: r.national_rank)
    own = BenchmarkClient(BENCHMARK_TARGET, tokens[best.entity_id])
    try:
        view = own.peer_comparison(period_start=day_start(month))
    finally:
        own.close()
    print(
        f"\n      {best.entity_id}, first nationally in {month:%Y-%m}, through the "
        "BenchmarkService (its own credential: its results and anonymous peer figures):"
    )
    for line in peer_lines(view):
        print(f"        {line}")
    return results


def catalogues_report(catalogues: Catalogues, national_token: str) -> None:
    """The oversight body publishes the catalogues in force through the CatalogueService."""
    files = {
        name: (catalogues.directory / f"{name}.yaml").read_text(encoding="utf-8")
        for name in catalogues.versions
    }
    client = CatalogueClient(BENCHMARK_TARGET, national_token)
    try:
        answer = client.publish(files, "Demo SGP", "Catálogos del demo")
    finally:
        client.close()
    published = ", ".join(
        f"{c.catalogue} {c.version}{'' if c.newly_published else ' (already)'}"
        for c in answer.catalogues
    )
    print(f"      Catalogues published by the national role (CatalogueService): {published}")


def peer_lines(view: benchmark_service_pb2.GetPeerComparisonResponse) -> list[str]:
    """Each standard: the entity's level and score beside its peers' median and p90."""
    lines = []
    for comparison in view.comparisons:
        own, peers = comparison.own, comparison.peers
        level = benchmark_pb2.StandardLevel.Name(own.level).removeprefix("STANDARD_LEVEL_")
        spread = (
            f"peers ({peers.count}) median {peers.p50:.0f}, p90 {peers.p90:.0f}"
            if peers.shown
            else f"peers ({peers.count}) withheld: too few"
        )
        lines.append(
            f"{own.standard_code:<26} {level.lower():<11} score {own.score:5.1f}  "
            f"rank {own.rank}/{own.peer_count}  {spread}"
        )
    return lines


def keep_secret(path: Path, secret: str) -> None:
    """A demo credential for the user's own sign-in, readable by its owner only."""
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
