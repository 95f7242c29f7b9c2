"""`make demo`: the platform's main job, end to end, on the local stack.

1. fresh demo database and topics, migrations; 2. a token per catalogue entity; 3. the intake
and processor services as their own processes; 4. a synthetic national dataset pushed through
the public gRPC API, per entity with its own token; 5. wait until every accepted event is a
fact and its KPIs are computed; 6. a KPI table, a CSV and a chart; 7. stop the services.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaAdminClient
from pcm_common.auth import TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import configure_logging
from pcm_common.settings import Settings
from pcm_intake.client import IntakeClient
from pcm_processor.settings import ProcessorSettings
from pcm_processor.testing import wait_caught_up
from tqdm import tqdm

from pcm_demo.report import day_start, draw_chart, print_table, read_day, write_csv
from pcm_demo.synthetic import LIMA, Dataset, Generator

REPO = Path(__file__).resolve().parents[2]
INTAKE_TARGET = "127.0.0.1:50051"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pcm-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=3, help="business days of activity")
    parser.add_argument("--scale", type=float, default=0.5, help="volume multiplier")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--out", type=Path, default=REPO / ".stack" / "demo")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave intake and processor running after the report",
    )
    return parser.parse_args(argv)


def step(number: int, text: str) -> None:
    print(f"[{number}/7] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        clickhouse_database="pcm_demo",
        topic_prefix="demo.",
        token_file=args.out / "tokens.json",
        log_level="WARNING",
    )
    configure_logging("WARNING")
    catalogues = load_catalogues(settings.catalogue_dir)

    step(1, "fresh demo database and topics, schema migrations")
    reset_demo_state(settings)
    migrate(connect(settings, database="default"), settings.clickhouse_database)
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)

    step(2, f"issuing a token for each of the {len(catalogues.entities)} catalogue entities")
    tokens = issue_tokens(settings, catalogues)

    step(3, "starting pcm-intake and pcm-processor")
    services = start_services(settings, args.out)
    try:
        seed = args.seed if args.seed is not None else int(time.time())
        step(4, f"generating {args.days} business days of national activity (seed {seed})")
        dataset = Generator(catalogues, datetime.now(UTC), seed, args.scale).dataset(args.days)
        accepted = push(dataset, tokens)
        step(5, "waiting for the processor to write every fact and its KPIs")
        wait_for_facts(settings, accepted, services)
        step(6, "report")
        report(settings, catalogues, args.out)
    finally:
        if not args.keep_running:
            step(7, "stopping the services")
            for process in services:
                process.terminate()
                process.wait(timeout=30)
        else:
            step(7, "services left running (intake :50051, metrics :9101/:9102)")
    return 0


def reset_demo_state(settings: Settings) -> None:
    connect(settings, database="default").execute(
        f"DROP DATABASE IF EXISTS {settings.clickhouse_database}"
    )
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        stale = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if stale:
            admin.delete_topics(stale)
            time.sleep(2)  # topic deletion is asynchronous in Kafka
    finally:
        admin.close()


def issue_tokens(settings: Settings, catalogues: Catalogues) -> dict[str, str]:
    settings.token_file.unlink(missing_ok=True)
    store = TokenStore(settings.token_file)
    return {e.entity_id: store.issue(e.entity_id, label="demo") for e in catalogues.entities}


def service_env(settings: Settings, out: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PCM_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "PCM_TOPIC_PREFIX": settings.topic_prefix,
        "PCM_TOKEN_FILE": str(settings.token_file),
        "PCM_INTAKE_RATE_LIMIT_EVENTS_PER_S": "0",
    }


def start_services(settings: Settings, out: Path) -> list[subprocess.Popen[bytes]]:
    env = service_env(settings, out)
    started = []
    for name, module in (
        ("intake", "pcm_intake.cli serve"),
        ("processor", "pcm_processor.cli worker"),
    ):
        log = (out / f"{name}.log").open("wb")
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", *module.split()],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        print(f"      {name}: pid {started[-1].pid}, log {out / f'{name}.log'}")
    wait_until(intake_is_serving, 60, "intake did not become healthy", started, out)
    return started


def intake_is_serving() -> bool:
    try:
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(INTAKE_TARGET))
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        return bool(status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    failure: str,
    services: list[subprocess.Popen[bytes]] | None = None,
    out: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise SystemExit(
        f"error: {failure} within {timeout_s:.0f} s" + (f"; see the logs in {out}" if out else "")
    )


def push(dataset: Dataset, tokens: dict[str, str]) -> dict[str, int]:
    """Every entity pushes its own events with its own token, in batches of 500."""
    accepted = {"attention": 0, "procedure_stage": 0}
    with tqdm(total=dataset.events, unit="event", desc="      pushing", file=sys.stdout) as bar:
        for entity_id, token in tokens.items():
            client = IntakeClient(INTAKE_TARGET, token)
            for domain, events, send in (
                ("attention", dataset.attentions.get(entity_id, []), client.push_attentions),
                (
                    "procedure_stage",
                    dataset.procedures.get(entity_id, []),
                    client.push_procedure_stages,
                ),
            ):
                for start in range(0, len(events), 500):
                    batch = events[start : start + 500]
                    result = send(batch)  # type: ignore[arg-type]  # pairs match by construction
                    accepted[domain] += result.accepted
                    bar.update(len(batch))
            client.close()
    print(
        f"      accepted {accepted['attention']:,} attention and "
        f"{accepted['procedure']:,} procedure events"
    )
    return accepted


def wait_for_facts(
    settings: Settings, accepted: dict[str, int], services: list[subprocess.Popen[bytes]]
) -> None:
    client = connect(settings)

    def written() -> tuple[int, int]:
        ((attention,),) = client.execute("SELECT uniqExact(event_id) FROM attention_events")
        ((procedure,),) = client.execute("SELECT uniqExact(event_id) FROM procedure_stage_events")
        return int(attention), int(procedure)

    total = accepted["attention"] + accepted["procedure_stage"]
    with tqdm(total=total, unit="fact", desc="      in ClickHouse", file=sys.stdout) as bar:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = sum(written())
            bar.update(done - bar.n)
            if done >= total:
                break
            if any(process.poll() is not None for process in services):
                raise SystemExit("error: a service stopped; see its log in .stack/demo/")
            time.sleep(1)
    if sum(written()) < total:
        raise SystemExit("error: the processor did not catch up within 5 minutes")
    # The processor commits an offset only once that message's KPIs are written: zero lag
    # means every KPI is current.
    topics = [
        topic_for_domain(d).name(settings.topic_prefix) for d in ("attention", "procedure_stage")
    ]
    group = ProcessorSettings(topic_prefix=settings.topic_prefix).group_id
    wait_caught_up(settings.kafka_bootstrap, group, topics, timeout_s=120)


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
    print("      Prometheus: http://127.0.0.1:9090 (pcm_intake_*, pcm_processor_* metrics)")
