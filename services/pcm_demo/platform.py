"""The whole platform as processes on this machine: every service, worker, the processor and the
dashboard, started, watched, killed and restarted by name (the demo runs it; the soak kills it).

A ``Layout`` says where each process listens: the documented ports, or all of them shifted by an
offset so that a second platform (the soak's) runs beside the first without a clash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HOST = "127.0.0.1"
GRPC_PORTS = {"intake": 50051, "complaints": 50052, "indicators": 50053, "surveys": 50054}
BENCHMARK_PORT = 50055
DASHBOARD_PORT = 8088
# Each process's /metrics port (the settings' defaults).
METRICS_PORTS = {
    "intake": 9101,
    "processor": 9102,
    "complaints": 9103,
    "complaints-worker": 9104,
    "indicators": 9105,
    "indicators-worker": 9106,
    "surveys": 9107,
    "surveys-worker": 9108,
    "benchmark": 9109,
    "benchmark-worker": 9110,
}
# Process name -> its command (module and subcommand), in start order.
COMMANDS = {
    "intake": "pcm_intake.cli serve",
    "complaints": "pcm_complaints.cli serve",
    "complaints-worker": "pcm_complaints.cli work",
    "indicators": "pcm_indicators.cli serve",
    "indicators-worker": "pcm_indicators.cli work",
    "surveys": "pcm_surveys.cli serve",
    "surveys-worker": "pcm_surveys.cli work",
    "processor": "pcm_processor.cli worker",
    "benchmark": "pcm_benchmark.cli serve",
    "benchmark-worker": "pcm_benchmark.cli work",
    "benchmark-web": "pcm_benchmark.cli web",
}
GRPC_SERVICES = (*GRPC_PORTS, "benchmark")


@dataclass(frozen=True)
class Layout:
    """Where every process listens; ``offset`` shifts every port."""

    offset: int = 0

    def target(self, service: str) -> str:
        """host:port of a gRPC service (intake, complaints, indicators, surveys, benchmark)."""
        port = BENCHMARK_PORT if service == "benchmark" else GRPC_PORTS[service]
        return f"{HOST}:{port + self.offset}"

    def metrics_port(self, process: str) -> int:
        return METRICS_PORTS[process] + self.offset

    def metrics_url(self, process: str) -> str:
        return f"http://{HOST}:{self.metrics_port(process)}/metrics"

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{DASHBOARD_PORT + self.offset}"

    def env(self) -> dict[str, str]:
        """The listen addresses and metrics ports of every process (PCM_* settings)."""
        env = {
            f"PCM_{name.upper()}_ADDRESS": self.target(name) for name in (*GRPC_PORTS, "benchmark")
        }
        env["PCM_BENCHMARK_WEB_ADDRESS"] = f"{HOST}:{DASHBOARD_PORT + self.offset}"
        env["PCM_BENCHMARK_INDICATORS_TARGET"] = self.target("indicators")
        for process in METRICS_PORTS:
            env[f"PCM_{process.upper().replace('-', '_')}_METRICS_PORT"] = str(
                self.metrics_port(process)
            )
        return env


def is_serving(target: str) -> bool:
    """The gRPC health check answers SERVING."""
    channel = grpc.insecure_channel(target)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        return bool(status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass
class Platform:
    """The processes of one platform: ``env`` is every process's environment, ``extra_env`` what
    only some get (the benchmark worker's national token), logs in ``out``."""

    layout: Layout
    env: Mapping[str, str]
    out: Path
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    announce: Callable[[str], None] = print

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or start again) one process, its output appended to ``<out>/<name>.log``."""
        log: IO[bytes] = (self.out / f"{name}.log").open("ab")
        env = {**os.environ, **self.env, **self.layout.env(), **self.extra_env.get(name, {})}
        process = subprocess.Popen(
            [sys.executable, "-m", *COMMANDS[name].split()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child holds its own descriptor
        self.processes[name] = process
        return process

    def start_all(self, names: Iterable[str] = COMMANDS) -> None:
        for name in names:
            process = self.start(name)
            self.announce(f"{name}: pid {process.pid}, log {self.out / f'{name}.log'}")

    def healthy(self) -> bool:
        """Every gRPC service SERVING and the dashboard answering."""
        return all(is_serving(self.layout.target(s)) for s in GRPC_SERVICES) and answers(
            f"{self.layout.dashboard_url}/salud"
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process and reap it (SIGKILL: no cleanup, no goodbye)."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
        process.wait(timeout=60)

    def restart(self, name: str, sig: int = signal.SIGKILL) -> subprocess.Popen[bytes]:
        """Signal one process (SIGKILL: a crash), reap it and start it again at once."""
        self.kill(name, sig)
        return self.start(name)

    def ready(self, name: str) -> bool:
        """One process answers: a gRPC service its health check (SERVING), the dashboard its
        /salud page, any other process (workers, the processor) its /metrics page."""
        if name in GRPC_SERVICES:
            return is_serving(self.layout.target(name))
        if name == "benchmark-web":
            return answers(f"{self.layout.dashboard_url}/salud")
        return answers(self.layout.metrics_url(name))

    def stopped(self) -> list[str]:
        """Names of the processes that exited on their own."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop_all(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every process (a graceful stop), SIGKILL what is still there after it."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
