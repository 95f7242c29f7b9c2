"""The processor as deployed, for tests and the benchmark: its own process on isolated topics
and database, its /metrics, and waiting until it has caught up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pcm_common.kafka.admin import ensure_topics
from pcm_common.settings import Settings
from pcm_processor.adapters.lag import LagMonitor
from pcm_processor.settings import consumer_group

from pcm_testkit.kafka import domain_topics
from pcm_testkit.metrics import metric_value, scrape
from pcm_testkit.waiting import wait_until


def free_port() -> int:
    """A port nobody listens on now: parallel processors must not fight over /metrics."""
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
        """``settings``: processor settings without the PCM_ prefix (``processor_delivery``)."""
        env = dict(os.environ)
        env.update(
            PCM_TOPIC_PREFIX=topic_prefix,
            PCM_CLICKHOUSE_DATABASE=database,
            PCM_PROCESSOR_METRICS_PORT=str(free_port()),
            # A SIGKILLed member is replaced after this; 6 s is the broker's minimum.
            PCM_PROCESSOR_SESSION_TIMEOUT_S="6",
            PCM_PROCESSOR_HEARTBEAT_INTERVAL_S="1",
            PCM_PROCESSOR_RETRY_MAX_BACKOFF_S="2",
            # Tests poll the lag gauge (and its refresh time) instead of sleeping.
            PCM_PROCESSOR_LAG_REFRESH_S="1",
        )
        env.update({f"PCM_{name.upper()}": value for name, value in settings.items()})
        return cls(env, log_path)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PCM_PROCESSOR_METRICS_PORT']}/metrics"

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Sum of a metric's samples on this processor's /metrics page now."""
        return metric_value(scrape(self.metrics_url), name, labels)

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
        return "\n".join(log_tail(self.log_path, lines))

    def wait_for_metric(
        self,
        name: str,
        above: float,
        timeout_s: float = 60,
        labels: Mapping[str, str] | None = None,
    ) -> float:
        """Poll /metrics until ``name`` exceeds ``above`` (e.g. events stored by this incarnation,
        retries during an outage); return its value."""

        def reached() -> float | None:
            self.check_alive()
            value = self.metric(name, labels)
            return value if value > above else None

        return wait_until(
            reached,
            timeout_s,
            lambda: f"{name} stayed <= {above}:\n{self.log_tail()}",
            ignore=(OSError,),  # not serving /metrics yet
        )

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"processor exited:\n{self.log_tail()}")


@contextmanager
def processor_for(
    settings: Settings, log_dir: Path, start: bool = True, **overrides: str
) -> Iterator[ProcessorProcess]:
    """A processor on ``settings``' topics and database (topics created), stopped on exit."""
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


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a process's log (none if it wrote none)."""
    return path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else []


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
    lag means everything produced so far is reflected in ClickHouse. Read from the broker, not
    from the processor's own report, so a processor that misreports fails here.
    """
    monitor = LagMonitor(bootstrap, group_id, topics)
    started = time.monotonic()
    calm = 0

    def settled() -> bool:
        nonlocal calm
        if processor is not None:
            processor.check_alive()
        calm = calm + 1 if _total_lag(monitor) == 0 else 0
        return calm >= stable_checks

    def failure() -> str:
        tail = processor.log_tail() if processor is not None else ""
        behind: dict[str, object]
        try:
            behind = {f"{topic}[{part}]": n for (topic, part), n in monitor.lag().items() if n}
        except Exception as error:  # the broker itself may be what is wrong
            behind = {"lag unknown": repr(error)}
        return f"processor did not catch up (messages behind: {behind})\n{tail}"

    try:
        wait_until(settled, timeout_s, failure, interval_s=0.5)
    finally:
        monitor.close()
    return time.monotonic() - started


def _total_lag(monitor: LagMonitor) -> int:
    try:
        return sum(monitor.lag().values())
    except Exception:  # broker or group coordinator busy: ask again
        monitor.close()
        return -1


def caught_up(
    settings: Settings, processor: ProcessorProcess | None = None, timeout_s: float = 90
) -> float:
    """``wait_caught_up`` for the processor group on every fact-domain topic of ``settings``."""
    return wait_caught_up(
        settings.kafka_bootstrap,
        consumer_group(settings.topic_prefix),
        domain_topics(settings.topic_prefix),
        timeout_s,
        processor=processor,
    )
