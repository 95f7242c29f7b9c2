"""Shared by the benchmarks of the stateful push services (complaints, indicators): their gRPC
service and outbox worker as their own processes, pre-built batches pushed from one client
thread per entity for a fixed time while a consumer reads the topic; prints items/s, batch
latency and the commit -> Kafka latency p50/p95 (from the moment the call returned, i.e.
PostgreSQL committed, to the moment the event was read from the topic). Needs the local stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.auth import TokenStore
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_testkit.isolation import isolated

Batch = tuple[bytes, list[str]]
"""A serialized request and the event ids it carries."""


@dataclass(frozen=True)
class Service:
    """What the benchmark drives: a CLI module with ``serve`` and ``work``, its settings prefix
    (``PCM_<PREFIX>_ADDRESS``...), the push method and the domain its worker publishes."""

    title: str
    module: str
    env_prefix: str
    method: str
    response: type[Message]
    domain: str
    unit: str
    target: int
    port: int


@dataclass
class Run:
    elapsed: float = 0.0
    items: int = 0
    latencies: list[float] = field(default_factory=list)
    committed: dict[str, float] = field(default_factory=dict)
    """event id -> monotonic time its call returned (PostgreSQL committed)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def push_for(
    service: Service, seconds: float, batches: list[list[Batch]], tokens: list[str]
) -> Run:
    run = Run()
    stop_at = time.monotonic() + seconds

    def worker(mine: list[Batch], token: str) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{service.port}")
        push = channel.unary_unary(
            service.method,
            request_serializer=None,  # already bytes
            response_deserializer=service.response.FromString,
        )
        metadata = (("authorization", f"Bearer {token}"),)
        for request, ids in mine:
            if time.monotonic() >= stop_at:
                break
            started = time.perf_counter()
            accepted = push(request, metadata=metadata, timeout=60).result.accepted
            returned = time.monotonic()
            with run.lock:
                run.items += accepted
                run.latencies.append(time.perf_counter() - started)
                run.committed.update(dict.fromkeys(ids, returned))

    threads = [
        threading.Thread(target=worker, args=(mine, token))
        for mine, token in zip(batches, tokens, strict=True)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.elapsed = time.monotonic() - started
    return run


class TopicReader(threading.Thread):
    """Reads the complaint topic and notes when each event id arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.arrived: dict[str, float] = {}
        self.stopping = threading.Event()
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [
            TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or []
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                now = time.monotonic()
                for record in records:
                    event_id = envelope_pb2.EventEnvelope.FromString(record.value).id
                    self.arrived.setdefault(event_id, now)
        self._consumer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def start(module: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_serving(process: subprocess.Popen[bytes], port: int) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    for _ in range(150):
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.2)
    process.kill()
    assert process.stderr is not None  # started with stderr=PIPE
    raise SystemExit(f"service did not start: {process.stderr.read().decode()[-2000:]}")


def measure(
    service: Service,
    entities: tuple[str, ...],
    make_batches: Callable[[str, int, int], list[Batch]],
    seconds: float,
    batch: int,
    setup: Callable[[str, dict[str, str]], None] | None = None,
) -> int:
    """Run the benchmark in topics and databases of its own; print its figures. ``setup``
    (target, token per entity) runs once the service serves, before anything is timed."""
    with isolated("bench") as settings:
        token_file = Path(tempfile.mkdtemp()) / "tokens.json"
        store = TokenStore(token_file)
        tokens = [store.issue(entity) for entity in entities]
        prefix = f"PCM_{service.env_prefix}"
        env = {
            **os.environ,
            "PCM_TOPIC_PREFIX": settings.topic_prefix,
            "PCM_POSTGRES_DATABASE": settings.postgres_database,
            "PCM_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "PCM_TOKEN_FILE": str(token_file),
            f"{prefix}_ADDRESS": f"127.0.0.1:{service.port}",
            f"{prefix}_METRICS_PORT": "0",
            f"{prefix}_WORKER_METRICS_PORT": "0",
            f"{prefix}_RATE_LIMIT_EVENTS_PER_S": "0",
            "PCM_LOG_LEVEL": "WARNING",
        }
        ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
        print("preparing requests ...", file=sys.stderr)
        per_thread = int(3 * service.target * seconds / len(entities) / batch) + 1
        warm = [make_batches(entity, 2, batch) for entity in entities]
        load = [make_batches(entity, per_thread, batch) for entity in entities]
        topic = topic_for_domain(service.domain).name(settings.topic_prefix)
        server = start(service.module, "serve", env)
        worker = start(service.module, "work", env)
        try:
            wait_serving(server, service.port)
            if setup is not None:
                setup(f"127.0.0.1:{service.port}", dict(zip(entities, tokens, strict=True)))
            push_for(service, 5, warm, tokens)
            reader = TopicReader(settings.kafka_bootstrap, topic)
            reader.start()
            pushed = push_for(service, seconds, load, tokens)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(reader.arrived) < len(pushed.committed):
                time.sleep(0.2)
            reader.stopping.set()
            reader.join(10)
        finally:
            for process in (server, worker):
                process.terminate()
                process.wait(timeout=30)
    delays = [
        reader.arrived[event_id] - returned
        for event_id, returned in pushed.committed.items()
        if event_id in reader.arrived
    ]
    rate = pushed.items / pushed.elapsed
    unit = service.unit
    print(
        f"{service.title} benchmark (real gRPC service process -> PostgreSQL transaction with "
        "outbox; worker process relays the outbox to Kafka, acks=all)"
    )
    print(f"  batches of {batch} events, {len(entities)} client threads (one entity each)")
    print(
        f"  {unit:12}: {rate:10,.0f} {unit}/s   "
        f"p50 {percentile(pushed.latencies, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(pushed.latencies, 0.99) * 1000:6.1f} ms per batch"
    )
    print(
        f"  outbox -> Kafka: p50 {percentile(delays, 0.5) * 1000:7.1f} ms   "
        f"p95 {percentile(delays, 0.95) * 1000:7.1f} ms   "
        f"({len(delays):,} of {len(pushed.committed):,} committed events read back)"
    )
    met = "met" if rate >= service.target else "NOT met"
    print(f"  target >= {service.target:,} {unit}/s: {met}")
    return 0 if len(delays) == len(pushed.committed) else 1
