"""Intake throughput: events/s through the real gRPC server into the real broker.

Starts `pcm-intake serve` as its own process (as deployed), pushes batches of 500 from client
threads for a fixed time, then one event per call, and prints events/s, p50/p99 batch latency
and the ratio. Needs the local stack (`make stack-up`).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from pcm.monitoring.v1 import attention_pb2, intake_service_pb2
from pcm_common.auth import TokenStore
from pcm_common.kafka.admin import ensure_topics
from pcm_common.settings import Settings
from pcm_testkit.isolation import isolated

REPO = Path(__file__).resolve().parents[1]
PORT = 50071
METRICS_PORT = 9171


@dataclass
class Run:
    elapsed: float = 0.0
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_batches(count: int, size: int) -> list[bytes]:
    """Serialized requests with fresh event ids, built before timing starts: the client's
    Python cost must not be what the benchmark measures."""
    now = int(time.time())
    batches = []
    for _ in range(count):
        request = intake_service_pb2.PushAttentionsRequest()
        for _ in range(size):
            ticket = uuid.uuid4().hex
            event = request.events.add(
                event_id=ticket,
                entity_id="RENIEC",
                ticket_id=ticket[:12],
                kind=attention_pb2.ATTENTION_EVENT_KIND_TICKET_SERVED,
                channel="PRESENCIAL",
                service_id="RENIEC_DNI_DUPLICADO",
                office_id="LIMA-CENTRO",
            )
            event.issued_at.seconds = now - 900
            event.called_at.seconds = now - 400
            event.finished_at.seconds = now - 100
        batches.append(request.SerializeToString())
    return batches


def push_for(seconds: float, batches: list[list[bytes]], token: str) -> Run:
    """Each thread sends its own pre-built batches until time is up (or they run out)."""
    run = Run()
    stop_at = time.monotonic() + seconds
    metadata = (("authorization", f"Bearer {token}"),)

    def worker(mine: list[bytes]) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{PORT}")
        push = channel.unary_unary(
            "/pcm.monitoring.v1.IntakeService/PushAttentions",
            request_serializer=None,  # already bytes
            response_deserializer=intake_service_pb2.PushAttentionsResponse.FromString,
        )
        for request in mine:
            if time.monotonic() >= stop_at:
                break
            started = time.perf_counter()
            accepted = push(request, metadata=metadata, timeout=60).result.accepted
            elapsed = time.perf_counter() - started
            with run.lock:
                run.events += accepted
                run.latencies.append(elapsed)

    workers = [threading.Thread(target=worker, args=(mine,)) for mine in batches]
    started = time.monotonic()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    run.elapsed = time.monotonic() - started
    return run


def prepared(threads: int, events_per_thread: int, batch: int) -> list[list[bytes]]:
    return [make_batches(max(1, events_per_thread // batch), batch) for _ in range(threads)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "pcm_intake.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{PORT}"))
    for _ in range(100):
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            return server
        except grpc.RpcError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"intake did not start: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    # Own topics and own PostgreSQL ledger, removed at the end: runs do not see each other.
    with isolated("bench") as settings:
        return run(args, settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    token_file = Path(tempfile.mkdtemp()) / "tokens.json"
    token = TokenStore(token_file).issue("RENIEC")
    env = {
        **os.environ,
        "PCM_TOPIC_PREFIX": settings.topic_prefix,
        "PCM_POSTGRES_DATABASE": settings.postgres_database,
        "PCM_TOKEN_FILE": str(token_file),
        "PCM_INTAKE_ADDRESS": f"127.0.0.1:{PORT}",
        "PCM_INTAKE_METRICS_PORT": str(METRICS_PORT),
        "PCM_INTAKE_RATE_LIMIT_EVENTS_PER_S": "0",
        "PCM_LOG_LEVEL": "WARNING",
    }
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
    # Enough pre-built events for 80,000/s over the run; the one-per-call run needs few.
    print("preparing requests ...", file=sys.stderr)
    warm = prepared(args.threads, 4 * args.batch, args.batch)
    batched_load = prepared(args.threads, int(80_000 * args.seconds / args.threads), args.batch)
    single_load = prepared(args.threads, 4_000, 1)
    server = start_server(env)
    try:
        push_for(2, warm, token)  # warm-up: connections, first-call costs
        batched = push_for(args.seconds, batched_load, token)
        single = push_for(min(args.seconds, 8), single_load, token)
    finally:
        server.terminate()
        server.wait(timeout=20)
    # The same load with the replica's in-memory ledger only: what the durable ledger costs.
    memory_load = prepared(args.threads, int(80_000 * args.seconds / args.threads), args.batch)
    server = start_server({**env, "PCM_PUSH_LEDGER": "memory"})
    try:
        push_for(2, prepared(args.threads, 4 * args.batch, args.batch), token)
        memory = push_for(args.seconds, memory_load, token)
    finally:
        server.terminate()
        server.wait(timeout=20)
    batched_rate = batched.events / batched.elapsed
    single_rate = single.events / single.elapsed
    print(
        "intake benchmark (real gRPC server process -> real Kafka, acks=all; event ids claimed "
        "in the PostgreSQL ledger)"
    )
    print(f"  batches of {args.batch}, {args.threads} client threads, {args.seconds:.0f} s")
    print(
        f"  batched     : {batched_rate:10,.0f} events/s   "
        f"p50 {percentile(batched.latencies, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(batched.latencies, 0.99) * 1000:6.1f} ms per batch"
    )
    print(
        f"  one per call: {single_rate:10,.0f} events/s   "
        f"p50 {percentile(single.latencies, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(single.latencies, 0.99) * 1000:6.1f} ms per call"
    )
    memory_rate = memory.events / memory.elapsed
    print(
        f"  batched, memory-only ledger: {memory_rate:10,.0f} events/s   "
        f"p99 {percentile(memory.latencies, 0.99) * 1000:6.1f} ms per batch   "
        f"(the PostgreSQL ledger costs {1 - batched_rate / memory_rate:.0%})"
    )
    print(f"  ratio batched / one-per-call: {batched_rate / max(single_rate, 1e-9):.1f}x")
    print(f"  target >= 50,000 events/s: {'met' if batched_rate >= 50_000 else 'NOT met'}")
    print(f"  median of batch latencies: {statistics.median(batched.latencies) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
