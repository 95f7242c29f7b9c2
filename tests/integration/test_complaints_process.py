"""`pcm-complaints serve` and `pcm-complaints work` as operators run them: their own processes,
killed with SIGKILL at the worst moments, on the real stack (PostgreSQL, Kafka, Prometheus).

Each test gets its own topic prefix and PostgreSQL database (the worker's leader lock is per
database, so no test sees another's worker). Where a test must kill a process *inside* a
transaction, a gate makes that moment certain instead of likely: a statement trigger, installed
in the test's database only, waits on an advisory lock the test holds once enough rows were
committed. The test sees the blocked statement in ``pg_locks``, kills the process, and opens the
gate; the dead process never sent its COMMIT, so PostgreSQL rolls that transaction back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pcm.monitoring.v1 import (
    complaint_pb2,
    complaints_service_pb2,
    complaints_service_pb2_grpc,
    envelope_pb2,
)
from pcm_common.auth import TokenStore
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect
from pcm_common.startup import ensure_topics
from pcm_complaints.settings import ComplaintsSettings
from pcm_testkit.events import complaint
from pcm_testkit.isolation import isolated
from pcm_testkit.kafka import read_envelopes
from pcm_testkit.metrics import metric_value, scrape
from pcm_testkit.waiting import wait_until

# The ports deploy/prometheus/prometheus.yml scrapes: job pcm-complaints (the gRPC service) and
# job pcm-complaints-worker (the relay and overdue job). A second worker gets one of its own.
GRPC_PORT = 50072
SERVICE_METRICS_PORT = 9103
WORKER_METRICS_PORT = 9104
SECOND_WORKER_METRICS_PORT = 9115  # not a service default (9105 is the indicators service)
ENTITY = "SUNARP"
OTHER = "ESSALUD"
LIMA = ZoneInfo("America/Lima")
GATE_KEY = 7_041_977
"""The advisory lock a gate's trigger waits on (held by the test)."""
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
Event = complaint_pb2.ComplaintEvent

# LocalStack (tests/conftest.py): conftest modules are not importable.
LocalStack = Any


# --- processes ----------------------------------------------------------------------------


@dataclass
class Book:
    """One test's complaint book: its settings, tokens, the processes it spawned (all killed at
    teardown) and a client of the service."""

    settings: ComplaintsSettings
    tokens: dict[str, str]
    logs: Path
    processes: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    service: subprocess.Popen[bytes] | None = None
    channel: grpc.Channel | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PCM_TOPIC_PREFIX": self.settings.topic_prefix,
            "PCM_POSTGRES_DATABASE": self.settings.postgres_database,
            "PCM_CLICKHOUSE_DATABASE": self.settings.clickhouse_database,
            "PCM_TOKEN_FILE": str(self.settings.token_file),
            "PCM_COMPLAINTS_ADDRESS": f"127.0.0.1:{GRPC_PORT}",
            "PCM_COMPLAINTS_METRICS_PORT": str(SERVICE_METRICS_PORT),
            "PCM_COMPLAINTS_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
            "PCM_COMPLAINTS_RATE_LIMIT_EVENTS_PER_S": "0",
            "PCM_COMPLAINTS_RELAY_IDLE_S": "0.2",
            **extra,
        }

    def spawn(self, command: str, **extra: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{command}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "pcm_complaints.cli", command],
                env=self.env(**extra),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))
        return process

    def log_tail(self, process: subprocess.Popen[bytes], lines: int = 30) -> str:
        log = next(path for spawned, path in self.processes if spawned is process)
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"process exited with {process.returncode}:\n{self.log_tail(process)}"
            )
        return True

    def start_service(self) -> subprocess.Popen[bytes]:
        """`serve` in its own process, waited for with the gRPC health check."""
        assert self.service is None or self.service.poll() is not None
        self.service = process = self.spawn("serve")
        health = health_pb2_grpc.HealthStub(self.client_channel())
        serving = health_pb2.HealthCheckResponse.SERVING

        def ready() -> bool:
            self.alive(process)
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            return bool(answer.status == serving)

        wait_until(ready, 30, lambda: "service not serving", ignore=(grpc.RpcError,))
        return process

    def start_worker(self, metrics_port: int = WORKER_METRICS_PORT, **extra: str) -> Worker:
        """`work` in its own process, waited for until its /metrics answers."""
        process = self.spawn("work", PCM_COMPLAINTS_WORKER_METRICS_PORT=str(metrics_port), **extra)
        running = Worker(process, metrics_port)
        wait_until(
            lambda: self.alive(process) and running.metrics(),
            30,
            lambda: f"worker /metrics not served:\n{self.log_tail(process)}",
            ignore=(OSError,),
        )
        return running

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL

    def close(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if self.channel is not None:
            self.channel.close()

    # --- the service's API and the book's tables -------------------------------------------

    def client_channel(self) -> grpc.Channel:
        if self.channel is None:
            # Reconnect quickly to a restarted service (the default backoff grows to minutes).
            self.channel = grpc.insecure_channel(
                f"127.0.0.1:{GRPC_PORT}",
                options=[
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 500),
                ],
            )
        return self.channel

    @property
    def stub(self) -> complaints_service_pb2_grpc.ComplaintsServiceStub:
        return complaints_service_pb2_grpc.ComplaintsServiceStub(self.client_channel())

    def push(
        self, events: Sequence[Event], token: str = ENTITY, wait_for_ready: bool = False
    ) -> complaints_service_pb2.PushComplaintEventsResponse:
        return self.stub.PushComplaintEvents(
            complaints_service_pb2.PushComplaintEventsRequest(events=events),
            metadata=(("authorization", f"Bearer {self.tokens[token]}"),),
            timeout=15,
            wait_for_ready=wait_for_ready,
        )

    def push_all(self, events: Sequence[Event], batch: int = 500, token: str = ENTITY) -> None:
        for chunk in batched(events, batch):
            answer = self.push(chunk, token)
            assert answer.result.accepted == len(chunk), answer.result

    def get(
        self, complaint_id: str, entity: str = ENTITY
    ) -> complaints_service_pb2.ComplaintStatus:
        return self.stub.GetComplaint(
            complaints_service_pb2.GetComplaintRequest(entity_id=entity, complaint_id=complaint_id),
            metadata=(("authorization", f"Bearer {self.tokens[entity]}"),),
            timeout=15,
        ).complaint

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.settings) as conn:
            return conn.execute(query, params).fetchall()

    def unpublished(self) -> int:
        return int(
            self.sql("SELECT count(*) FROM complaint_outbox WHERE published_at IS NULL")[0][0]
        )

    def published_rows(self) -> int:
        return int(
            self.sql("SELECT count(*) FROM complaint_outbox WHERE published_at IS NOT NULL")[0][0]
        )

    def on_kafka(self, minimum: int) -> list[tuple[bytes, envelope_pb2.EventEnvelope]]:
        """(key, envelope) of every record on the complaint topic."""
        topic = topic_for_domain("complaint").name(self.settings.topic_prefix)
        return read_envelopes(self.settings.kafka_bootstrap, topic, minimum)


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    metrics_port: int

    def metrics(self) -> str:
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout_s=2)

    def value(self, name: str, **labels: str) -> float:
        return metric_value(self.metrics(), name, labels)


class Gate:
    """Holds the first ``event`` statement on ``table`` once ``rows_sql`` counts ``threshold``
    rows, until ``open``: a statement trigger waits on an advisory lock this connection holds."""

    def __init__(self, book: Book, table: str, event: str, rows_sql: str, threshold: int) -> None:
        self._conn = connect(book.settings, autocommit=True)
        self._conn.execute("SET lock_timeout = '20s'")  # a test never hangs on its gate
        self._conn.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        self._table = table
        self._conn.execute(
            f"""
            CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF ({rows_sql}) >= {threshold} THEN
                    PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
                END IF;
                RETURN NULL;
            END $$
            """
        )
        self._conn.execute(
            f"CREATE TRIGGER test_gate BEFORE {event} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION test_gate()"
        )

    def holding(self) -> bool:
        """A statement waits at the gate (its transaction is open, not committed)."""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (GATE_KEY,),
        ).fetchone()
        return row is not None and row[0] > 0

    def open(self) -> None:
        """Let the held statement go (its process is dead: its transaction rolls back) and
        remove the trigger (which waits for that transaction to end)."""
        self._conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
        try:
            self._conn.execute(f"DROP TRIGGER test_gate ON {self._table}")
            self._conn.execute("DROP FUNCTION test_gate()")
        finally:
            self._conn.close()


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    token_file = tmp_path / "tokens.json"
    store = TokenStore(token_file)
    tokens = {entity: store.issue(entity) for entity in (ENTITY, OTHER)}
    with isolated("test") as isolated_settings:
        settings = ComplaintsSettings(
            topic_prefix=isolated_settings.topic_prefix,
            clickhouse_database=isolated_settings.clickhouse_database,
            postgres_database=isolated_settings.postgres_database,
            token_file=token_file,
        )
        ensure_topics(settings)
        running = Book(settings, tokens, tmp_path)
        try:
            yield running
        finally:
            running.close()


# --- events --------------------------------------------------------------------------------

PATHS = [
    ("REGISTERED",),
    ("REGISTERED", "ANSWERED"),
    ("REGISTERED", "ANSWERED", "NOTIFIED"),
    ("REGISTERED", "ANSWERED", "NOTIFIED", "CLOSED", "ARCHIVED"),
    ("REGISTERED", "ANSWERED", "NOTIFIED", "FOLLOW_UP", "FOLLOW_UP", "CLOSED"),
    ("REGISTERED", "WITHDRAWN", "ARCHIVED"),
    ("RESOLVED_AT_DESK", "ARCHIVED"),
]


def lifecycle(path: Sequence[str], entity: str = ENTITY) -> list[Event]:
    """One complaint's events along ``path``: filed ten days ago, a stage an hour."""
    filed = int(time.time()) - 10 * 86_400
    complaint_id = complaint(entity).complaint_id
    events = []
    for hour, stage in enumerate(path):
        event = complaint(
            entity,
            complaint_id=complaint_id,
            stage=stage,
            filed_at=filed,
            occurred_at=filed + 3_600 * hour,
        )
        if hour:
            event.ClearField("filed_at")
        events.append(event)
    return events


def interleaved(lives: Sequence[Sequence[Event]], rng: random.Random) -> list[Event]:
    """All events, complaints mixed at random, each complaint's own in lifecycle order."""
    queues = [list(reversed(life)) for life in lives]
    stream = []
    while queues:
        queue = rng.choice(queues)
        stream.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return stream


def stage_name(event: Event) -> str:
    return complaint_pb2.ComplaintStage.Name(event.stage).removeprefix("COMPLAINT_STAGE_")


def batched(events: Sequence[Event], size: int) -> list[list[Event]]:
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


# --- 1. the service killed mid-push -------------------------------------------------------


@dataclass
class Pusher:
    """The client: sends each batch until it gets an answer (resending after any failure)."""

    book: Book
    batches: list[list[Event]]
    answers: dict[int, complaints_service_pb2.PushComplaintEventsResponse] = field(
        default_factory=dict
    )
    failures: Counter[int] = field(default_factory=Counter)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            for index, batch in enumerate(self.batches):
                self.answers[index] = self._send(index, batch)
        except BaseException as error:  # reported by the test
            self.error = error

    def _send(
        self, index: int, batch: list[Event]
    ) -> complaints_service_pb2.PushComplaintEventsResponse:
        deadline = time.monotonic() + 45
        while True:
            try:
                return self.book.push(batch, wait_for_ready=True)
            except grpc.RpcError as error:
                if error.code() not in RETRIED or time.monotonic() > deadline:
                    raise
                self.failures[index] += 1


def test_service_killed_mid_push_loses_doubles_and_resurrects_nothing(book: Book) -> None:
    rng = random.Random(20_261_202)
    lives = [lifecycle(rng.choice(PATHS)) for _ in range(300)]
    batches = batched(interleaved(lives, rng), 50)
    every_event = {e.event_id: e for life in lives for e in life}
    answered_before_kill = 3
    book.start_service()
    # The 4th batch is held inside its transaction (its first transition insert), so the kill
    # lands mid-push for certain: that batch was sent, not committed and never answered.
    gate = Gate(
        book,
        "complaint_transitions",
        "INSERT",
        "SELECT count(*) FROM complaint_transitions",
        sum(map(len, batches[:answered_before_kill])),
    )
    try:
        pusher = Pusher(book, batches)
        client = threading.Thread(target=pusher.run, name="pusher", daemon=True)
        client.start()
        wait_until(
            lambda: len(pusher.answers) == answered_before_kill and gate.holding(),
            30,
            lambda: f"no batch held after the first ones: {len(pusher.answers)} answered",
            interval_s=0.02,
        )
        assert book.service is not None
        book.kill(book.service)
    finally:
        gate.open()
    book.start_service()
    client.join(90)
    assert not client.is_alive() and pusher.error is None, pusher.error
    assert pusher.failures[answered_before_kill] >= 1  # the held batch got no answer

    # Each answer accounts for its whole batch; a duplicate is only possible for a batch sent
    # before (an earlier attempt may have committed and lost its answer).
    accepted: Counter[str] = Counter()
    for index, batch in enumerate(batches):
        result = pusher.answers[index].result
        assert not result.rejections, (index, result.rejections)
        duplicates = set(result.duplicate_indexes)
        receipts = {r.index for r in pusher.answers[index].receipts}
        assert receipts | duplicates == set(range(len(batch))) and not receipts & duplicates
        assert result.accepted == len(receipts)
        if not pusher.failures[index]:
            assert not duplicates, index
        accepted.update(batch[i].event_id for i in receipts)
    # The held batch was rolled back with its dead process: its resend stored all of it.
    assert pusher.answers[answered_before_kill].result.accepted == 50
    # To be strict, everything again: every event is now a duplicate.
    for batch in batches:
        again = book.push(batch)
        assert again.result.accepted == 0
        assert list(again.result.duplicate_indexes) == list(range(len(batch)))
    print(
        f"\n{len(every_event)} events in {len(batches)} batches; "
        f"{sum(pusher.failures.values())} attempts got no answer; "
        f"{len(every_event) - len(accepted)} events first answered as duplicates"
    )
    assert max(accepted.values()) == 1  # no event stored by two answers

    # The book holds exactly what was sent: per complaint through the API...
    for life in lives:
        first, last = life[0], life[-1]
        status = book.get(first.complaint_id)
        filed_on = first.filed_at.ToDatetime(dt.UTC).astimezone(LIMA).date().isoformat()
        assert (status.stage, status.transitions, status.filed_on) == (
            last.stage,
            len(life),
            filed_on,
        )
        answered = {"ANSWERED", "RESOLVED_AT_DESK"} & {stage_name(e) for e in life}
        assert bool(status.answered_on) == bool(answered)
        assert not status.overdue
    with pytest.raises(grpc.RpcError) as never_sent:
        book.get(complaint(ENTITY).complaint_id)
    assert never_sent.value.code() == grpc.StatusCode.NOT_FOUND
    # ... and in its tables: no complaint never sent, no transition lost or doubled, one
    # outbox row per event.
    sent = {life[0].complaint_id: life for life in lives}
    stored = dict(book.sql("SELECT complaint_id, transitions FROM complaints"))
    assert stored == {code: len(life) for code, life in sent.items()}
    transitions: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for code, event_id, stage in book.sql(
        "SELECT complaint_id, event_id, stage FROM complaint_transitions "
        "ORDER BY complaint_id, occurred_at"
    ):
        transitions[code].append((event_id, stage))
    assert transitions == {
        code: [(e.event_id, stage_name(e)) for e in life] for code, life in sent.items()
    }
    outbox = Counter(event_id for (event_id,) in book.sql("SELECT event_id FROM complaint_outbox"))
    assert outbox == Counter(every_event.keys())


# --- 2. the relay killed mid-batch --------------------------------------------------------


def test_relay_killed_mid_batch_republishes_the_same_events_and_loses_none(book: Book) -> None:
    book.start_service()
    events = [e for _ in range(1_000) for e in lifecycle(("REGISTERED", "ANSWERED"))]
    book.push_all(events)  # 2,000 outbox rows; no worker runs yet
    total = len(events)
    outbox = dict(book.sql("SELECT event_id, envelope FROM complaint_outbox"))
    assert len(outbox) == total
    # Two batches go through; the third is produced and acknowledged by Kafka, then held at its
    # `published_at` stamp, inside the relay's transaction, where the worker is killed.
    gate = Gate(
        book,
        "complaint_outbox",
        "UPDATE",
        "SELECT count(*) FROM complaint_outbox WHERE published_at IS NOT NULL",
        100,
    )
    try:
        first = book.start_worker(PCM_COMPLAINTS_RELAY_BATCH="50")
        wait_until(
            lambda: book.published_rows() == 100 and gate.holding(),
            30,
            lambda: f"relay not held mid-batch: {book.published_rows()} rows published",
            interval_s=0.05,
        )
        assert 0 < book.published_rows() < total
        book.kill(first.process)
    finally:
        gate.open()
    assert book.published_rows() == 100  # the held batch's stamp died with its transaction
    book.start_worker(PCM_COMPLAINTS_RELAY_BATCH="50")
    wait_until(lambda: book.unpublished() == 0, 30, lambda: f"{book.unpublished()} unpublished")

    records = book.on_kafka(total)
    copies: dict[str, list[bytes]] = defaultdict(list)
    order: list[str] = []
    for key, envelope in records:
        assert key == ENTITY.encode()
        if envelope.id not in copies:
            order.append(envelope.id)
        copies[envelope.id].append(envelope.SerializeToString())
    assert set(copies) == {e.event_id for e in events}  # nothing lost, nothing foreign
    for event_id, published in copies.items():
        # A re-publish is the same event: the bytes committed in the outbox, every time.
        assert set(published) == {outbox[event_id]}, event_id
    assert order == [e.event_id for e in events]  # first copies in commit order
    twice = sorted(event_id for event_id, published in copies.items() if len(published) > 1)
    print(f"\n{len(twice)} of {total} event ids published more than once")
    assert len(twice) == 50  # exactly the batch acknowledged by Kafka but not stamped
    assert max(len(published) for published in copies.values()) == 2


# --- 3. two workers, one leader -----------------------------------------------------------


def test_one_worker_leads_and_the_other_takes_over_when_it_is_killed(book: Book) -> None:
    book.start_service()
    workers = [
        book.start_worker(WORKER_METRICS_PORT),
        book.start_worker(SECOND_WORKER_METRICS_PORT),
    ]

    def leaders() -> list[float]:
        return [w.value("pcm_complaints_leader") for w in workers]

    wait_until(
        lambda: sorted(leaders()) == [0.0, 1.0],
        20,
        lambda: f"not exactly one leader: {leaders()}",
        ignore=(OSError,),
    )
    leader, follower = sorted(workers, key=lambda w: -w.value("pcm_complaints_leader"))
    before = [e for _ in range(50) for e in lifecycle(("REGISTERED", "ANSWERED"))]
    book.push_all(before)
    wait_until(lambda: book.unpublished() == 0, 20, lambda: f"{book.unpublished()} unpublished")
    assert leaders() == [1.0 if w is leader else 0.0 for w in workers]
    assert leader.value("pcm_complaints_outbox_published_total") == len(before)
    assert follower.value("pcm_complaints_outbox_published_total") == 0

    book.kill(leader.process)
    # The lock goes with the dead leader's connection: the follower takes it.
    wait_until(
        lambda: follower.value("pcm_complaints_leader") == 1.0,
        20,
        lambda: "the follower did not take over",
        ignore=(OSError,),
    )
    after = [e for _ in range(50) for e in lifecycle(("REGISTERED", "ANSWERED"))]
    book.push_all(after)
    wait_until(lambda: book.unpublished() == 0, 20, lambda: f"{book.unpublished()} unpublished")
    assert follower.value("pcm_complaints_outbox_published_total") == len(after)
    published = {envelope.id for _, envelope in book.on_kafka(len(before) + len(after))}
    assert published == {e.event_id for e in before + after}


# --- 4. the overdue job in the worker process ---------------------------------------------


def prometheus(stack: LocalStack, query: str) -> dict[str, float]:
    """Instant query: job label -> value."""
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in result}


def scrape_jobs(stack: LocalStack) -> set[str]:
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/targets", timeout=5) as answer:
        targets = json.load(answer)["data"]["activeTargets"]
    return {target["labels"]["job"] for target in targets}


def scraping_complaints(stack: LocalStack) -> None:
    """A Prometheus started before deploy/prometheus/prometheus.yml gained the complaints jobs
    still runs its old configuration: reload it (the local stack enables /-/reload for tests)."""
    jobs = {"pcm-complaints", "pcm-complaints-worker"}
    if jobs <= scrape_jobs(stack):
        return
    reload = urllib.request.Request(f"{stack.prometheus_url}/-/reload", method="POST")
    urllib.request.urlopen(reload, timeout=10).close()
    wait_until(
        lambda: jobs <= scrape_jobs(stack),
        10,
        lambda: f"Prometheus scrapes {sorted(scrape_jobs(stack))}, not {sorted(jobs)}",
    )


def test_overdue_job_publishes_once_and_prometheus_scrapes_the_worker(
    book: Book, stack: LocalStack
) -> None:
    scraping_complaints(stack)
    service = book.start_service()
    late = lifecycle(("REGISTERED",), entity=OTHER)
    on_time = lifecycle(("REGISTERED", "ANSWERED"), entity=OTHER)
    answer = book.push([*late, *on_time], token=OTHER)
    assert answer.result.accepted == 3, answer.result
    due = dt.date.fromisoformat(answer.receipts[0].due_on)
    code = late[0].complaint_id
    worker = book.start_worker(
        PCM_COMPLAINTS_TODAY=(due + dt.timedelta(days=1)).isoformat(),
        PCM_COMPLAINTS_OVERDUE_INTERVAL_S="0.5",
    )
    passes: set[float] = set()

    def flagged_and_rerun() -> bool:
        page = worker.metrics()
        passes.add(metric_value(page, "pcm_complaints_overdue_job_last_success_timestamp_seconds"))
        overdue = metric_value(page, "pcm_complaints_overdue", {"entity": OTHER})
        return overdue == 1.0 and len(passes - {0.0}) >= 4

    wait_until(
        flagged_and_rerun,
        20,
        lambda: f"overdue job: {len(passes)} passes seen\n{book.log_tail(worker.process)}",
        interval_s=0.1,
    )
    assert worker.value("pcm_complaints_open", entity=OTHER) == 1.0

    # The real Prometheus scrapes both processes (every 5 s): it has *these* processes' series
    # (same start time) and the overdue gauge of the worker.
    started = {
        "pcm-complaints": metric_value(
            scrape(f"http://127.0.0.1:{SERVICE_METRICS_PORT}/metrics"),
            "process_start_time_seconds",
        ),
        "pcm-complaints-worker": worker.value("process_start_time_seconds"),
    }
    assert service.poll() is None and all(started.values())
    query = f'pcm_complaints_overdue{{job="pcm-complaints-worker",entity="{OTHER}"}}'

    def scraped() -> bool:
        jobs = prometheus(stack, 'process_start_time_seconds{job=~"pcm-complaints.*"}')
        return jobs == started and prometheus(stack, query) == {"pcm-complaints-worker": 1.0}

    wait_until(
        scraped,
        30,
        lambda: f"Prometheus has {prometheus(stack, query)}, want {started} and 1",
        interval_s=0.5,
    )
    assert prometheus(stack, 'up{job=~"pcm-complaints.*"}') == {
        "pcm-complaints": 1.0,
        "pcm-complaints-worker": 1.0,
    }

    # The job ran many times; it flagged the complaint once, and the OVERDUE event exists
    # once, in the book and on Kafka.
    page = worker.metrics()
    passes.add(metric_value(page, "pcm_complaints_overdue_job_last_success_timestamp_seconds"))
    print(f"\nat least {len(passes - {0.0})} overdue job passes")
    assert metric_value(page, "pcm_complaints_marked_overdue_total", {"entity": OTHER}) == 1.0
    overdue_id = f"pcm-overdue/{code}"
    assert book.sql("SELECT count(*) FROM complaint_transitions WHERE stage = 'OVERDUE'") == [(1,)]
    assert book.sql(
        "SELECT event_id FROM complaint_outbox WHERE event_id LIKE %s", "pcm-overdue/%"
    ) == [(overdue_id,)]
    wait_until(lambda: book.unpublished() == 0, 20, lambda: f"{book.unpublished()} unpublished")
    records = book.on_kafka(4)
    overdue = [
        e.complaint
        for _, e in records
        if e.complaint.stage == complaint_pb2.COMPLAINT_STAGE_OVERDUE
    ]
    assert [e.event_id for e in overdue] == [overdue_id]
    assert overdue[0].overdue and overdue[0].due_on == due.isoformat()
    assert book.get(code, entity=OTHER).overdue
    assert not book.get(on_time[0].complaint_id, entity=OTHER).overdue
