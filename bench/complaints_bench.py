"""Complaints throughput and outbox latency: transitions/s through the real gRPC service into
PostgreSQL, and how long a committed transition takes to reach Kafka through the worker's relay.

Starts `pcm-complaints serve` and `pcm-complaints work` as their own processes (as deployed),
pushes pre-built batches (each complaint registered then answered in the same batch) from client
threads for a fixed time while a consumer reads the complaint topic, and prints transitions/s,
batch latency and the commit -> Kafka latency p50/p95 (from the moment the call returned, i.e.
PostgreSQL committed, to the moment the event was read from the topic). Needs the local stack.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import complaints_service_pb2, envelope_pb2
from pcm_common.auth import TokenStore
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_testkit.events import ago, complaint
from pcm_testkit.isolation import isolated

PORT = 50073
METRICS_PORT = 9173
WORKER_METRICS_PORT = 9174
ENTITIES = ("RENIEC", "SUNAT", "SUNARP", "ONP")
TARGET = 5_000


@dataclass
class Run:
    elapsed: float = 0.0
    transitions: int = 0
    latencies: list[float] = field(default_factory=list)
    committed: dict[str, float] = field(default_factory=dict)
    """event id -> monotonic time its call returned (PostgreSQL committed)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_batches(entity: str, count: int, size: int) -> list[tuple[bytes, list[str]]]:
    """Serialized requests and their event ids: ``size / 2`` complaints registered and
    answered, built before timing starts."""
    batches = []
    for _ in range(count):
        request = complaints_service_pb2.PushComplaintEventsRequest()
        for _ in range(size // 2):
            code = f"R-{uuid.uuid4().hex[:16]}"
            registered = complaint(
                entity, complaint_id=code, filed_at=ago(3600), occurred_at=ago(3600)
            )
            answered = complaint(entity, complaint_id=code, stage="ANSWERED", occurred_at=ago(60))
            answered.ClearField("filed_at")
            request.events.extend([registered, answered])
        batches.append((request.SerializeToString(), [e.event_id for e in request.events]))
    return batches


def push_for(
    seconds: float, batches: list[list[tuple[bytes, list[str]]]], tokens: list[str]
) -> Run:
    run = Run()
    stop_at = time.monotonic() + seconds

    def worker(mine: list[tuple[bytes, list[str]]], token: str) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{PORT}")
        push = channel.unary_unary(
            "/pcm.monitoring.v1.ComplaintsService/PushComplaintEvents",
            request_serializer=None,  # already bytes
            response_deserializer=complaints_service_pb2.PushComplaintEventsResponse.FromString,
        )
        metadata = (("authorization", f"Bearer {token}"),)
        for request, ids in mine:
            if time.monotonic() >= stop_at:
                break
            started = time.perf_counter()
            accepted = push(request, metadata=metadata, timeout=60).result.accepted
            returned = time.monotonic()
            with run.lock:
                run.transitions += accepted
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


def start(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pcm_complaints.cli", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_serving(process: subprocess.Popen[bytes]) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{PORT}"))
    for _ in range(150):
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"service did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with isolated("bench") as settings:
        return run(args, settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    token_file = Path(tempfile.mkdtemp()) / "tokens.json"
    store = TokenStore(token_file)
    tokens = [store.issue(entity) for entity in ENTITIES]
    env = {
        **os.environ,
        "PCM_TOPIC_PREFIX": settings.topic_prefix,
        "PCM_POSTGRES_DATABASE": settings.postgres_database,
        "PCM_TOKEN_FILE": str(token_file),
        "PCM_COMPLAINTS_ADDRESS": f"127.0.0.1:{PORT}",
        "PCM_COMPLAINTS_METRICS_PORT": str(METRICS_PORT),
        "PCM_COMPLAINTS_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
        "PCM_COMPLAINTS_RATE_LIMIT_EVENTS_PER_S": "0",
        "PCM_LOG_LEVEL": "WARNING",
    }
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
    print("preparing requests ...", file=sys.stderr)
    per_thread = int(3 * TARGET * args.seconds / len(ENTITIES) / args.batch) + 1
    warm = [make_batches(entity, 2, args.batch) for entity in ENTITIES]
    load = [make_batches(entity, per_thread, args.batch) for entity in ENTITIES]
    topic = topic_for_domain("complaint").name(settings.topic_prefix)
    service, worker = start("serve", env), start("work", env)
    try:
        wait_serving(service)
        push_for(5, warm, tokens)
        reader = TopicReader(settings.kafka_bootstrap, topic)
        reader.start()
        pushed = push_for(args.seconds, load, tokens)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(reader.arrived) < len(pushed.committed):
            time.sleep(0.2)
        reader.stopping.set()
        reader.join(10)
    finally:
        for process in (service, worker):
            process.terminate()
            process.wait(timeout=30)
    delays = [
        reader.arrived[event_id] - returned
        for event_id, returned in pushed.committed.items()
        if event_id in reader.arrived
    ]
    rate = pushed.transitions / pushed.elapsed
    print(
        "complaints benchmark (real gRPC service process -> PostgreSQL transaction with outbox; "
        "worker process relays the outbox to Kafka, acks=all)"
    )
    print(f"  batches of {args.batch} events, {len(ENTITIES)} client threads (one entity each)")
    print(
        f"  transitions : {rate:10,.0f} transitions/s   "
        f"p50 {percentile(pushed.latencies, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(pushed.latencies, 0.99) * 1000:6.1f} ms per batch"
    )
    print(
        f"  outbox -> Kafka: p50 {percentile(delays, 0.5) * 1000:7.1f} ms   "
        f"p95 {percentile(delays, 0.95) * 1000:7.1f} ms   "
        f"({len(delays):,} of {len(pushed.committed):,} committed events read back)"
    )
    print(f"  target >= {TARGET:,} transitions/s: {'met' if rate >= TARGET else 'NOT met'}")
    return 0 if len(delays) == len(pushed.committed) else 1


if __name__ == "__main__":
    raise SystemExit(main())
