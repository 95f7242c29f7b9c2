"""`python -m pcm_soak`: the fault soak, end to end, on a stack and a platform of its own.

1. the private stack (Kafka, ClickHouse, PostgreSQL; ports shifted) and a fresh database and
   topic prefix for the run; 2. a token per entity; 3. every process of the platform (ports
   shifted); 4. the generator's national dataset pushed through every push service while the
   faults happen; 5. wait until everything settled; 6. verify against the ledger; 7. report.
The platform and the stack are stopped at the end whatever happened (``--keep`` leaves them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from kafka import KafkaAdminClient
from pcm_common.auth import ROLE_HOLDERS, Role, TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.logging import configure_logging
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.postgres.client import create_database
from pcm_common.settings import Settings
from pcm_common.startup import migrate_postgres
from pcm_demo.platform import COMMANDS, Layout, Platform
from pcm_indicators.client import IndicatorsClient
from pcm_testkit.generator import Generator
from pcm_testkit.processor import log_tail
from psycopg import sql
from pydantic import SecretStr
from tqdm import tqdm

from pcm_soak import settle, verify, workload
from pcm_soak.config import FULL, SHORT, SoakConfig
from pcm_soak.faults import Fault, FaultRunner, schedule
from pcm_soak.ledger import Ledger
from pcm_soak.load import Load
from pcm_soak.report import Summary, render
from pcm_soak.stack import PrivateStack

LIMA = ZoneInfo("America/Lima")
PROCESSES = [name for name in COMMANDS if name != "benchmark-web"]
"""Every process but the dashboard (nothing of the soak reads it)."""
RUN_PREFIX = "soak"
PIDS_FILE = "platform.pids"
READY_TIMEOUT_S = 240.0
BAR_INTERVAL_S = 0.5 if sys.stdout.isatty() else 15.0
"""Progress bars redraw less often into a log than on a terminal."""


def parse_args(argv: list[str] | None) -> SoakConfig:
    parser = argparse.ArgumentParser(
        prog="python -m pcm_soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="the shortened soak CI runs")
    parser.add_argument("--duration", type=float, help="seconds of load (faults within it)")
    parser.add_argument("--kills", type=int, help="kill -9 of processes during the load")
    parser.add_argument("--clickhouse-outage", type=float, help="seconds ClickHouse is stopped")
    parser.add_argument("--postgres-outage", type=float, help="seconds PostgreSQL is stopped")
    parser.add_argument("--no-kafka-restart", action="store_true")
    parser.add_argument("--days", type=int, help="business days of national activity")
    parser.add_argument("--scale", type=float, help="the generator's volume multiplier")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--offset", type=int, help="added to every port (default 10000)")
    parser.add_argument("--stack-dir", type=Path, help="the private stack's folder")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack, platform data and topics"
    )
    parser.add_argument("--summary", type=Path, help="also write the summary (JSON) to this file")
    args = parser.parse_args(argv)
    config = SHORT if args.short else FULL
    changes = {
        "duration_s": args.duration,
        "kills": args.kills,
        "clickhouse_outage_s": args.clickhouse_outage,
        "postgres_outage_s": args.postgres_outage,
        "days": args.days,
        "scale": args.scale,
        "seed": args.seed,
        "offset": args.offset,
        "stack_dir": args.stack_dir,
    }
    config = replace(config, **{k: v for k, v in changes.items() if v is not None})
    if args.no_kafka_restart:
        config = replace(config, kafka_restart=False)
    if args.keep:
        config = replace(config, keep=True)
    if args.summary:
        config = replace(config, summary=args.summary)
    return config


def say(text: str) -> None:
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM as Ctrl-C: the finally blocks stop the platform and the stack.
    raise KeyboardInterrupt(f"signal {signum}")


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.run_id = f"{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
        self.out = config.runs_dir / self.run_id
        self.stack = PrivateStack(config.stack_dir, config.offset)
        self.layout = Layout(config.offset)
        tag = self.run_id.replace("-", "_")
        self.settings = Settings(
            kafka_bootstrap=self.stack.kafka_bootstrap,
            clickhouse_host="127.0.0.1",
            clickhouse_port=self.stack.port("PCM_CLICKHOUSE_PORT"),
            postgres_host="127.0.0.1",
            postgres_port=self.stack.port("PCM_POSTGRES_PORT"),
            postgres_password=SecretStr(""),
            postgres_password_file=self.stack.postgres_password_file,
            clickhouse_database=f"pcm_{RUN_PREFIX}_{tag}",
            postgres_database=f"pcm_{RUN_PREFIX}_{tag}",
            topic_prefix=f"{RUN_PREFIX}-{self.run_id}.",
            token_file=(self.out / "tokens.json").resolve(),
            log_level="WARNING",
        )
        self.summary = Summary(self.run_id, {k: str(v) for k, v in asdict(config).items()})
        self.platform: Platform | None = None
        self.faults: FaultRunner | None = None

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        say(f"soak {self.run_id} (seed {self.config.seed}): logs and results in {self.out}")
        try:
            self._soak()
        except KeyboardInterrupt:
            self.summary.errors.append("interrupted")
            say("interrupted: stopping the platform and the stack")
        except Exception as error:
            self.summary.errors.append(f"{type(error).__name__}: {error}")
            say(f"error: {type(error).__name__}: {error}")
        finally:
            self._teardown()
        self.summary.timings["total"] = time.monotonic() - started
        self.summary.write_json(self.out / "summary.json")
        if self.config.summary is not None:
            self.summary.write_json(self.config.summary)
        say("")
        say(render(self.summary))
        say(f"\nsummary: {self.out / 'summary.json'}")
        return 1 if self.summary.failures() else 0

    def _soak(self) -> None:
        config, timings = self.config, self.summary.timings
        catalogues = load_catalogues(self.settings.catalogue_dir)
        say(f"[1/7] private stack in {config.stack_dir} (ports +{config.offset})")
        timings["stack up"] = self.stack.up()
        self._fresh_state()
        say(f"[2/7] tokens for {len(catalogues.entities)} entities")
        tokens, national = self._tokens(catalogues)
        say(f"[3/7] the platform: {', '.join(PROCESSES)}")
        moment = time.monotonic()
        self._start_platform(national)
        timings["platform up"] = time.monotonic() - moment
        rng = random.Random(config.seed)
        dataset = Generator(catalogues, config.seed, run_id=f"k{self.run_id[-4:]}").dataset(
            config.days, dt.datetime.now(dt.UTC), config.scale
        )
        streams = workload.build(
            dataset, rng, config.invalid_share, config.resend_share, config.race_share
        )
        faults = schedule(config, rng)
        total = sum(stream.items for stream in streams)
        say(
            f"[4/7] load: {total:,} items over {config.duration_s:.0f} s "
            f"({', '.join(f'{s.name} {s.items:,}' for s in streams)}); "
            f"{config.kills} kills, Kafka restart {'yes' if config.kafka_restart else 'no'}, "
            f"ClickHouse down {config.clickhouse_outage_s:.0f} s, "
            f"PostgreSQL down {config.postgres_outage_s:.0f} s"
        )
        ledger = Ledger()
        moment = time.monotonic()
        self._load_and_faults(streams, ledger, tokens, faults, total)
        timings["load"] = time.monotonic() - moment
        last_push = time.time()
        say("[5/7] waiting for the workers, the processor and the benchmark worker")
        moment = time.monotonic()
        try:
            settled = settle.settle(
                self.settings,
                self.layout,
                lambda: connect(self.settings),
                last_push,
                config.settle_timeout_s,
                say,
            )
        except settle.NotSettled as late:
            self._show_logs(late.processes)
            raise
        timings["settle"] = time.monotonic() - moment
        self.summary.errors += settled.late
        say("[6/7] verifying against the ledger")
        moment = time.monotonic()
        self._verify(catalogues, ledger, national)
        timings["verify"] = time.monotonic() - moment
        say("[7/7] stopping")

    # --- steps ------------------------------------------------------------------------------

    def _show_logs(self, processes: tuple[str, ...], lines: int = 25) -> None:
        """The end of each process's log: what it was doing when the soak stopped waiting."""
        for name in processes:
            log = self.out / f"{name}.log"
            tail = log_tail(log, lines)
            say(f"--- the last {len(tail)} lines of {log}")
            for line in tail:
                say(f"    {line}")

    def _fresh_state(self) -> None:
        """This run's databases and topics; earlier runs' leftovers removed (the stack is the
        soak's own, so every ``pcm_soak_*`` database and ``soak-*`` topic is a leftover)."""
        admin_ch = connect(self.settings, database="default")
        try:
            for (name,) in admin_ch.execute("SHOW DATABASES"):
                if name.startswith(f"pcm_{RUN_PREFIX}_"):
                    admin_ch.execute(f"DROP DATABASE IF EXISTS {name}")
            migrate(admin_ch, self.settings.clickhouse_database)
        finally:
            admin_ch.disconnect()
        with connect_postgres(self.settings, dbname="postgres", autocommit=True) as admin_pg:
            rows = admin_pg.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"pcm_{RUN_PREFIX}_%",)
            ).fetchall()
            for (name,) in rows:
                admin_pg.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        create_database(self.settings)
        migrate_postgres(self.settings)
        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            stale = [t for t in admin.list_topics() if t.startswith(f"{RUN_PREFIX}-")]
            if stale:
                admin.delete_topics(stale)
        finally:
            admin.close()
        ensure_topics(self.settings.kafka_bootstrap, self.settings.topic_prefix)

    def _tokens(self, catalogues: Catalogues) -> tuple[dict[str, str], str]:
        store = TokenStore(self.settings.token_file)
        tokens = {e.entity_id: store.issue(e.entity_id, label="soak") for e in catalogues.entities}
        national = store.issue(
            ROLE_HOLDERS[Role.NATIONAL], Role.NATIONAL, label="soak: benchmark worker"
        )
        return tokens, national

    def platform_env(self) -> dict[str, str]:
        s = self.settings
        return {
            **self.stack.settings_env(),
            "PCM_CLICKHOUSE_DATABASE": s.clickhouse_database,
            "PCM_POSTGRES_DATABASE": s.postgres_database,
            "PCM_TOPIC_PREFIX": s.topic_prefix,
            "PCM_TOKEN_FILE": str(s.token_file),
            "PCM_INTAKE_RATE_LIMIT_EVENTS_PER_S": "0",
            "PCM_COMPLAINTS_RATE_LIMIT_EVENTS_PER_S": "0",
            "PCM_INDICATORS_RATE_LIMIT_EVENTS_PER_S": "0",
            "PCM_SURVEYS_RATE_LIMIT_EVENTS_PER_S": "0",
            # The overdue job and the relays look often: the run settles in seconds.
            "PCM_COMPLAINTS_OVERDUE_INTERVAL_S": "2",
            "PCM_COMPLAINTS_RELAY_IDLE_S": "0.5",
            "PCM_INDICATORS_RELAY_IDLE_S": "0.5",
            "PCM_SURVEYS_RELAY_IDLE_S": "0.5",
            # A SIGKILLed processor is replaced in its group after 6 s (the broker's minimum).
            "PCM_PROCESSOR_SESSION_TIMEOUT_S": "6",
            "PCM_PROCESSOR_HEARTBEAT_INTERVAL_S": "1",
            "PCM_PROCESSOR_RETRY_MAX_BACKOFF_S": "2",
            "PCM_PROCESSOR_LAG_REFRESH_S": "1",
            "PCM_PROCESSOR_PERIOD_CLOSE_INTERVAL_S": "5",
            "PCM_PROCESSOR_STATE_DIR": str((self.out / "processor-state").resolve()),
            "PCM_BENCHMARK_REFRESH_S": "2",
            "PCM_BENCHMARK_FULL_REFRESH_S": "10",
        }

    def _start_platform(self, national: str) -> None:
        self.platform = Platform(
            self.layout,
            self.platform_env(),
            self.out,
            extra_env={"benchmark-worker": {"PCM_BENCHMARK_TOKEN": national}},
            announce=lambda line: say(f"      {line}"),
        )
        self.platform.start_all(PROCESSES)
        self._write_pids()
        platform = self.platform
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = list(PROCESSES)
        while waiting:
            waiting = [name for name in waiting if not platform.ready(name)]
            stopped = platform.stopped()
            if stopped:
                raise RuntimeError(f"{', '.join(stopped)} stopped at start; see {self.out}")
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not answering after {READY_TIMEOUT_S:.0f} s: {waiting}")
            if waiting:
                time.sleep(0.5)

    def _write_pids(self) -> None:
        """The platform's processes, for a caller that must clean up after a soak it had to
        kill (``tests/soak``): each is recognised by this run's topic prefix."""
        if self.platform is None:
            return
        pids = {name: process.pid for name, process in self.platform.processes.items()}
        record = {"topic_prefix": self.settings.topic_prefix, "pids": pids}
        (self.out / PIDS_FILE).write_text(json.dumps(record))

    def _load_and_faults(
        self,
        streams: list[workload.Stream],
        ledger: Ledger,
        tokens: dict[str, str],
        faults: list[Fault],
        total: int,
    ) -> None:
        assert self.platform is not None
        config = self.config
        bar = tqdm(
            total=total,
            unit="item",
            desc="      answered",
            file=sys.stdout,
            mininterval=BAR_INTERVAL_S,
        )
        load = Load(
            streams,
            ledger,
            self.layout,
            tokens,
            config.duration_s,
            config.duration_s + config.settle_timeout_s,
            bar.update,
        )
        self.faults = FaultRunner(
            faults,
            self.platform,
            self.stack,
            load.started,
            say,
            load.in_flight.busy,
            self._write_pids,
            load.in_flight.typical_s,
            random.Random(config.seed + 1),
        )
        load.start()
        self.faults.start()
        try:
            while load.running() or not self.faults.done():
                if time.monotonic() > load.started + config.duration_s + config.settle_timeout_s:
                    self.summary.errors.append("the load or the faults did not finish in time")
                    break
                time.sleep(0.5)
        finally:
            bar.close()
        self.summary.errors += load.errors + self.faults.errors
        self.summary.calls = ledger.calls
        self.summary.timings["load streams"] = max(load.finished.values(), default=0.0)

    def _verify(self, catalogues: Catalogues, ledger: Ledger, national: str) -> None:
        client = connect(self.settings)
        summary = self.summary
        readers = verify.Readers(self.settings, client)
        today = dt.datetime.now(LIMA).date()
        summary.answers = [
            verify.answers_of(ledger.items(domain), domain) for domain in workload.DOMAINS
        ]
        complaints = list(ledger.items(workload.COMPLAINT))
        overdue = verify.expected_overdue(complaints, catalogues, today)
        for store in tqdm(
            verify.STORES, desc="      stores", file=sys.stdout, mininterval=BAR_INTERVAL_S
        ):
            stored = store.read(readers)
            items = list(ledger.items(store.domain))
            summary.stores.append(verify.check_store(store, items, stored))
            if store.domain == workload.COMPLAINT:
                summary.stores.append(
                    verify.check_store(store, items, stored, overdue, verify.PLATFORM_OVERDUE)
                )
        flagged = verify.flagged_overdue(self.settings)
        predicted = {(key[0], key[1].removeprefix(verify.OVERDUE_PREFIX)) for key in overdue}
        summary.overdue_flags = [
            f"flagged, not predicted: {c}" for c in sorted(flagged - predicted)
        ]
        summary.overdue_flags += [
            f"predicted, not flagged: {c}" for c in sorted(predicted - flagged)
        ]
        summary.corrections = verify.current_indicators(
            ledger.items(workload.INDICATOR_VALUE), self.settings
        )
        say("      KPIs against the reference over the ledger")
        envelopes = verify.reference_envelopes(ledger, catalogues, overdue)
        summary.kpis.append(
            verify.kpis_against_reference(
                client, self.settings.clickhouse_database, catalogues, envelopes
            )
        )
        say("      the other KPIs against the processor's recompute from the stored facts")
        summary.kpis.append(
            verify.kpis_against_recompute(
                client, self.settings, self.platform_env(), catalogues, self.out / "recompute.log"
            )
        )
        say("      benchmark assessments against a fresh assessment")
        indicators = IndicatorsClient(self.layout.target("indicators"), national)
        try:
            summary.assessments = verify.assessments_against_fresh(
                client,
                self.settings.clickhouse_database,
                catalogues,
                indicators.list_indicator_values,
                today,
            )
        finally:
            indicators.close()
        client.disconnect()

    def _teardown(self) -> None:
        if self.faults is not None:
            self.faults.stop()
            self.summary.faults = list(self.faults.log)
        if self.platform is not None:
            self.platform.stop_all()
        if self.config.keep:
            say(f"kept: the stack in {self.config.stack_dir}, database and topics of {self.run_id}")
            return
        try:
            self._drop_state()
        except Exception as error:  # the stack may be down already: the next run cleans up
            say(f"note: could not drop this run's databases ({type(error).__name__})")
        try:
            self.stack.down()
        except Exception as error:
            self.summary.errors.append(f"stopping the private stack: {error}")

    def _drop_state(self) -> None:
        client = connect(self.settings, database="default")
        try:
            client.execute(f"DROP DATABASE IF EXISTS {self.settings.clickhouse_database}")
        finally:
            client.disconnect()
        with connect_postgres(self.settings, dbname="postgres", autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.settings.postgres_database)
                )
            )
        admin_kafka = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            mine = [
                t for t in admin_kafka.list_topics() if t.startswith(self.settings.topic_prefix)
            ]
            if mine:
                admin_kafka.delete_topics(mine)
        finally:
            admin_kafka.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    configure_logging("WARNING")
    # kafka-python logs a cancelled metadata refresh when a reader closes: not a finding.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _terminate)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return Soak(config).run()
