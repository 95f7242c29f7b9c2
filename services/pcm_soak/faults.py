"""The fault schedule and who carries it out: ``kill -9`` of processes at random moments of the
load, each restarted at once, and the stack's components stopped and started again (a Kafka
restart, ClickHouse and PostgreSQL outages), with a log of what happened when.

Two threads: one for the stack (an outage is a stop and, later, a start) and one for the kills,
which also supervises: a process that exits on its own is logged (a finding) and started again.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pcm_demo.platform import Platform

from pcm_soak.config import SoakConfig
from pcm_soak.stack import PrivateStack

PROCESSOR = "processor"
RELAYS = ("complaints-worker", "indicators-worker", "surveys-worker", "benchmark-worker")
PUSH_SERVICES = ("intake", "complaints", "indicators", "surveys")
SERVICES = (*PUSH_SERVICES, "benchmark")
KILLABLE = (PROCESSOR, *RELAYS, *SERVICES)
READY_BEFORE_KILL_S = 10.0
"""A kill waits (at most this) for its target to answer first: a crash of a working process."""
BUSY_BEFORE_KILL_S = 5.0
"""A push service's kill then waits (at most this) for a call under way, and strikes at a
random moment of a typical call's length: a crash mid-call, at any stage of it."""

Action = Literal["kill", "outage", "restart"]


@dataclass(frozen=True)
class Fault:
    at_s: float
    """Seconds after the load started (at the earliest: a stack fault waits for the one
    before it)."""
    action: Action
    target: str
    """A platform process (kill) or a stack component (outage, restart)."""
    duration_s: float = 0.0
    """An outage: how long the component stays down once it has stopped."""


@dataclass
class Happened:
    at_s: float
    action: str
    target: str
    detail: str = ""
    took_s: float | None = None
    """Kill: until the restarted process answered; stop/start/restart: the stack command."""


def schedule(config: SoakConfig, rng: random.Random) -> list[Fault]:
    """Kafka restarted at 15 % of the load, ClickHouse stopped at 30 % for its outage, then
    PostgreSQL; the kills at random moments between 5 % and 95 %, every kind of process hit."""
    span = config.duration_s
    faults: list[Fault] = []
    if config.kafka_restart:
        faults.append(Fault(0.15 * span, "restart", "kafka"))
    next_free = 0.3 * span
    if config.clickhouse_outage_s > 0:
        faults.append(Fault(next_free, "outage", "clickhouse", config.clickhouse_outage_s))
        next_free += config.clickhouse_outage_s + 0.05 * span
    if config.postgres_outage_s > 0:
        at = max(0.6 * span, next_free)
        faults.append(Fault(at, "outage", "postgres", config.postgres_outage_s))
        next_free = at + config.postgres_outage_s
    if next_free > 0.95 * span:
        raise ValueError(
            f"a load of {span:.0f} s is too short for these outages: they end at {next_free:.0f} s"
        )
    moments = sorted(rng.uniform(0.05 * span, 0.95 * span) for _ in range(config.kills))
    return sorted(
        faults
        + [
            Fault(at, "kill", target)
            for at, target in zip(moments, _targets(config.kills, rng), strict=True)
        ],
        key=lambda fault: fault.at_s,
    )


def _targets(count: int, rng: random.Random) -> list[str]:
    """Every killable process once (the processor, a relay and a service first when fewer
    kills than processes), then any."""
    if count >= len(KILLABLE):
        chosen = list(KILLABLE)
        chosen += rng.choices(KILLABLE, k=count - len(KILLABLE))
    else:
        first = [PROCESSOR, rng.choice(RELAYS), rng.choice(SERVICES)]
        rest = [name for name in KILLABLE if name not in first]
        chosen = (first + rng.sample(rest, len(rest)))[:count]
    rng.shuffle(chosen)
    return chosen


class FaultRunner:
    def __init__(
        self,
        faults: list[Fault],
        platform: Platform,
        stack: PrivateStack,
        started: float,
        announce: Callable[[str], None],
        busy: Callable[[str], bool] = lambda name: False,
        started_process: Callable[[], None] = lambda: None,
        call_s: Callable[[str], float] = lambda name: 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self._busy = busy
        self._call_s = call_s
        self._rng = rng or random.Random()
        self._started_process = started_process
        self.log: list[Happened] = []
        self.errors: list[str] = []
        self._platform = platform
        self._stack = stack
        self._started = started
        self._announce = announce
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._restarting: dict[str, tuple[float, Happened]] = {}
        kills = [f for f in faults if f.action == "kill"]
        stack_faults = [f for f in faults if f.action != "kill"]
        self._threads = [
            threading.Thread(target=self._guarded, args=(self._kills, kills), daemon=True),
            threading.Thread(
                target=self._guarded, args=(self._stack_faults, stack_faults), daemon=True
            ),
        ]
        self._pending = len(faults)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def done(self) -> bool:
        """Every scheduled fault was carried out (supervision goes on until ``stop``)."""
        with self._lock:
            return self._pending == 0

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def kills(self) -> int:
        return sum(1 for happened in self.log if happened.action == "kill -9")

    def now_s(self) -> float:
        return time.monotonic() - self._started

    def _record(self, happened: Happened) -> Happened:
        with self._lock:
            self.log.append(happened)
        took = f" ({happened.took_s:.1f} s)" if happened.took_s is not None else ""
        self._announce(
            f"  [{happened.at_s:6.1f} s] {happened.action} {happened.target}{took} "
            f"{happened.detail}"
        )
        return happened

    def _guarded(self, body: Callable[[list[Fault]], None], faults: list[Fault]) -> None:
        try:
            body(faults)
        except Exception:
            self.errors.append(traceback.format_exc())

    def _wait_for(self, at_s: float, supervise: bool) -> bool:
        """Until ``at_s`` after the start (False: stopped first)."""
        while not self._stop.is_set():
            if supervise:
                self._supervise()
            if self.now_s() >= at_s:
                return True
            time.sleep(0.2)
        return False

    def _done_one(self) -> None:
        with self._lock:
            self._pending -= 1

    # --- the stack --------------------------------------------------------------------------

    def _stack_faults(self, faults: list[Fault]) -> None:
        for fault in faults:
            if not self._wait_for(fault.at_s, supervise=False):
                return
            at = self.now_s()
            if fault.action == "restart":
                took = self._stack.restart(fault.target)
                self._record(Happened(at, "restart", fault.target, "(stop, start)", took))
            else:
                took = self._stack.stop(fault.target)
                self._record(Happened(at, "stop", fault.target, "(down)", took))
                # The outage counts from the moment it is down (a clean stop takes a while).
                if self._stop.wait(fault.duration_s):
                    self._stack.start(fault.target)
                    return
                at = self.now_s()
                took = self._stack.start(fault.target)
                detail = f"(answering again; down {self.now_s() - at + fault.duration_s:.0f} s)"
                self._record(Happened(at, "start", fault.target, detail, took))
            self._done_one()

    # --- the kills and the supervision ------------------------------------------------------

    def _kills(self, faults: list[Fault]) -> None:
        for fault in faults:
            if not self._wait_for(fault.at_s, supervise=True):
                return
            self._kill(fault.target)
            self._done_one()
        self._wait_for(float("inf"), supervise=True)

    def _kill(self, name: str) -> None:
        waited = 0.0
        deadline = time.monotonic() + READY_BEFORE_KILL_S
        while not self._platform.ready(name) and time.monotonic() < deadline:
            time.sleep(0.2)
            waited = READY_BEFORE_KILL_S - (deadline - time.monotonic())
        deadline = time.monotonic() + BUSY_BEFORE_KILL_S
        while name in PUSH_SERVICES and not self._busy(name) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._busy(name):
            # Anywhere in the call: validating, storing, committed but not answered yet.
            time.sleep(self._rng.uniform(0.0, self._call_s(name)))
        mid_call = self._busy(name)
        old = self._platform.processes[name].pid
        at = self.now_s()
        new = self._platform.restart(name).pid
        self._started_process()
        note = ", mid-call" if mid_call else ""
        if waited >= 0.3:
            note += f", after waiting {waited:.0f} s for it to answer"
        happened = self._record(
            Happened(at, "kill -9", name, f"pid {old} -> restarted as pid {new}{note}")
        )
        self._restarting[name] = (time.monotonic(), happened)

    def _supervise(self) -> None:
        """Time the restarted processes until they answer; restart one that exited alone."""
        for name, (since, happened) in list(self._restarting.items()):
            if self._platform.ready(name):
                happened.took_s = time.monotonic() - since
                del self._restarting[name]
        for name in self._platform.stopped():
            process = self._platform.processes[name]
            code = process.returncode
            new = self._platform.start(name).pid
            self._started_process()
            self._record(
                Happened(
                    self.now_s(),
                    "exited",
                    name,
                    f"on its own (status {code}): started again as pid {new}",
                )
            )
