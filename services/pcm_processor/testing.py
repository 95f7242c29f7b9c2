"""Support for tests and the benchmark: run the processor as a subprocess, produce events, wait
until it caught up, and compare ClickHouse's KPIs with the reference computation."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clickhouse_driver import Client
from kafka import KafkaProducer
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.envelope import PoisonMessage
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings

from pcm_processor.adapters.lag import LagMonitor
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.kpis import build_plan
from pcm_processor.domain.reference import KpiKey, reference_kpis
from pcm_processor.domain.registry import DOMAINS

Measured = tuple[float, float, float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ProcessorProcess:
    """``python -m pcm_processor.cli worker`` with its own environment and log file."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def configured(
        cls, topic_prefix: str, database: str, log_path: Path, **settings: str
    ) -> ProcessorProcess:
        env = dict(os.environ)
        env.update(
            PCM_TOPIC_PREFIX=topic_prefix,
            PCM_CLICKHOUSE_DATABASE=database,
            PCM_PROCESSOR_METRICS_PORT=str(free_port()),
            # A SIGKILLed member is replaced after this; 6 s is the broker's minimum.
            PCM_PROCESSOR_SESSION_TIMEOUT_S="6",
            PCM_PROCESSOR_HEARTBEAT_INTERVAL_S="1",
            PCM_PROCESSOR_RETRY_MAX_BACKOFF_S="2",
            PCM_PROCESSOR_LAG_REFRESH_S="2",
        )
        env.update({f"PCM_{name.upper()}": value for name, value in settings.items()})
        return cls(env, log_path)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PCM_PROCESSOR_METRICS_PORT']}/metrics"

    def start(self) -> None:
        self._log = self._log or self.log_path.open("ab")
        self._log.write(f"\n=== start {self.starts + 1} ===\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pcm_processor.cli", "worker"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the consumer group."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def processor_for(
    settings: Settings, log_dir: Path, start: bool = True, **overrides: str
) -> Iterator[ProcessorProcess]:
    """A processor on `settings`' topics and database (topics created), stopped on exit."""
    ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
    process = ProcessorProcess.configured(
        settings.topic_prefix, settings.clickhouse_database, log_dir / "processor.log", **overrides
    )
    if start:
        process.start()
    try:
        yield process
    finally:
        process.stop()


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Produce (key, value) records and wait until the broker acknowledged them all."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    count = 0
    for key, value in records:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush(timeout=120)
    producer.close()
    return count


def domain_topics(
    prefix: str, domains: Sequence[str] = ("attention", "procedure_stage")
) -> list[str]:
    return [topic_for_domain(name).name(prefix) for name in domains]


def wait_caught_up(
    bootstrap: str,
    group_id: str,
    topics: Sequence[str],
    timeout_s: float,
    stable_checks: int = 2,
    processor: ProcessorProcess | None = None,
) -> float:
    """Wait until every partition's committed offset is its end offset; return the time taken.

    The processor commits an offset only after the KPIs of that message are written, so zero
    lag means everything consumed so far is reflected in ClickHouse.
    """
    monitor = LagMonitor(bootstrap, group_id, topics)
    started = time.monotonic()
    calm = 0
    try:
        while time.monotonic() - started < timeout_s:
            if processor is not None and not processor.alive():
                raise AssertionError(f"processor exited:\n{processor.log_tail()}")
            try:
                lag = sum(monitor.lag().values())
            except Exception:  # broker or coordinator busy: ask again
                monitor.close()
                lag = -1
            calm = calm + 1 if lag == 0 else 0
            if calm >= stable_checks:
                return time.monotonic() - started
            time.sleep(0.5)
    finally:
        monitor.close()
    tail = processor.log_tail() if processor is not None else ""
    raise AssertionError(f"processor did not catch up within {timeout_s} s\n{tail}")


def read_kpis(client: Client, database: str) -> dict[KpiKey, Measured]:
    rows = client.execute(
        "SELECT entity_id, kpi_code, toString(grain), toUInt32(period_start), channel, "
        f"service_id, value, numerator, denominator FROM {database}.kpi_values FINAL"
    )
    return {tuple(row[:6]): tuple(row[6:]) for row in rows}


def expected_kpis(
    catalogues: Catalogues,
    envelopes: Mapping[str, Iterable[envelope_pb2.EventEnvelope]],
    time_zone: str = "America/Lima",
) -> dict[KpiKey, Measured]:
    """The reference KPIs of the usable envelopes, per domain name (poison is skipped)."""
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock(time_zone))
    result: dict[KpiKey, Measured] = {}
    for name, items in envelopes.items():
        domain = DOMAINS[name]
        rows = []
        for envelope in items:
            try:
                rows.append(domain.mapper(envelope, Position(0, 0), ctx))
            except PoisonMessage:
                continue
        for key, row in reference_kpis(build_plan(domain, catalogues), rows).items():
            result[key] = (row.value, row.numerator, row.denominator)
    return result


def differences(
    expected: Mapping[KpiKey, Measured], actual: Mapping[KpiKey, Measured], tolerance: float = 1e-9
) -> list[str]:
    """Human-readable differences: missing, unexpected and different KPI values."""
    problems = [f"missing {k}: {expected[k]}" for k in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected {k}: {actual[k]}" for k in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        if any(not _close(a, b, tolerance) for a, b in zip(want, got, strict=True)):
            problems.append(f"different {key}: expected {want}, got {got}")
    return problems


def _close(a: float, b: float, tolerance: float) -> bool:
    """Counts are exact; means and percents may differ by float rounding only."""
    if float(a).is_integer() and float(b).is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of a metric's samples in a /metrics page (optionally filtered by labels)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        total += float(value)
    return total


def as_records(envelopes: Iterable[envelope_pb2.EventEnvelope]) -> list[tuple[bytes, bytes]]:
    return [(e.entity_id.encode(), e.SerializeToString()) for e in envelopes]
