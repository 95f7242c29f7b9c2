"""``pcm-benchmark work``: keep the results within a minute of the KPIs they depend on.

Every ``benchmark_refresh_s`` (30 s) the worker asks ClickHouse when the MONTH KPIs of the
current and the previous month were last written (two partitions of ``kpi_values``); a month
whose KPIs changed since its last assessment is reassessed at once, and the current month is
reassessed every ``benchmark_full_refresh_s`` anyway (an indicator review changes no KPI). The
quarter and the year holding a reassessed month are reassessed with it (on their months so far,
``rollup.py``). A reassessment writes every result (the table keeps the newest per key) and
publishes on ``pcm.benchmark-result.v1`` the results whose level, score or rank changed (key:
entity).

A restart republishes each result once (the worker remembers what it published only in
memory): consumers keep the newest per key, as with the KPI topic. Replicas elect one leader
(a PostgreSQL session advisory lock, ``pcm_common.postgres.leader``): it alone refreshes; a
standby takes over within a pass of the leader's death (its first pass republishes once).
Each pass of the leader also exports the per-entity business figures the business alerts read
(``entity_watch.py``); a standby exports none.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import psycopg
from clickhouse_driver import Client
from google.protobuf.timestamp_pb2 import Timestamp
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.catalogues.models import period_start
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.envelope import wrap
from pcm_common.kafka.producer import AcknowledgedProducer, EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.postgres.leader import LeaderLock
from pcm_common.startup import retrying
from pcm_indicators.client import IndicatorsClient
from prometheus_client import start_http_server

from pcm_benchmark.entity_watch import EntityWatch, drop_entity_figures
from pcm_benchmark.job import Reports, assess_period, period_label
from pcm_benchmark.messages import message_of
from pcm_benchmark.metrics import (
    LAST_REFRESH,
    REFRESH_ERRORS,
    REFRESH_SECONDS,
    REFRESHES,
    RESULTS_PUBLISHED,
    WORKER_LEADER,
)
from pcm_benchmark.national import Result
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.store import stored_of

log = get_logger(__name__)
SOURCE = "/platform/benchmark"

Standing = tuple[str, float, int, int, float, int, float]


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def previous_month(month: dt.date) -> dt.date:
    return month_start(month - dt.timedelta(days=1))


KpisRead = tuple[dt.datetime, dt.datetime]
"""A month's newest KPI ``computed_at``, and the second (naive UTC) it was read in."""


def _utc_naive(at: dt.datetime) -> dt.datetime:
    """ClickHouse DateTime as naive UTC (the server's zone is UTC; an aware value converted)."""
    return at if at.tzinfo is None else at.astimezone(dt.UTC).replace(tzinfo=None)


class Refresher:
    """One pass decides which months to reassess, reassesses them and publishes the changes."""

    def __init__(
        self,
        settings: BenchmarkSettings,
        catalogues: Catalogues,
        reports: Reports,
        producer: EventProducer,
        today: Callable[[], dt.date] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        watch: EntityWatch | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._watch = watch
        self._catalogues = catalogues
        self._reports = reports
        self._producer = producer
        zone = ZoneInfo(settings.benchmark_time_zone)
        self._today = today or (lambda: dt.datetime.now(zone).date())
        self._monotonic = monotonic
        self._wall = wall
        self._topic = topic_for_domain("benchmark_result").name(settings.topic_prefix)
        self._kpis_seen: dict[dt.date, KpisRead] = {}
        """Per month: what the last reassessment read of its KPIs."""
        self._last_full = float("-inf")
        self._published: dict[tuple[str, dt.date, str, str, str], Standing] = {}

    def due(self, client: Client) -> tuple[dict[dt.date, str], dict[dt.date, KpisRead]]:
        """The months to reassess now with their reason, and when each month's KPIs were last
        written, read now (remembered once it is reassessed)."""
        current = month_start(self._today())
        read_at = dt.datetime.fromtimestamp(int(self._wall()), dt.UTC).replace(tzinfo=None)
        written = {
            month: (at, read_at)
            for month, at in self._kpis_written(client, (previous_month(current), current)).items()
        }
        months = {m: "kpis" for m, (at, _) in written.items() if self._unseen(m, at)}
        if self._monotonic() - self._last_full >= self._settings.benchmark_full_refresh_s:
            months.setdefault(current, "periodic")
        return months, written

    def assessed(self, month: dt.date, read: KpisRead) -> None:
        """The month was reassessed from the KPIs ``due`` read."""
        self._kpis_seen[month] = read

    def _unseen(self, month: dt.date, written: dt.datetime) -> bool:
        """Whether KPIs of the month may have been written since its last reassessment read
        them. ``computed_at`` has whole seconds: a read in the same second as the newest write
        may have missed later rows of that second (a flush writes its rows in several inserts),
        so the month is reassessed once more, by a read in a later second."""
        seen = self._kpis_seen.get(month)
        if seen is None:
            return True
        seen_written, read_at = seen
        return written != seen_written or _utc_naive(written) >= read_at

    def _kpis_written(
        self, client: Client, months: Sequence[dt.date]
    ) -> dict[dt.date, dt.datetime]:
        zone = ZoneInfo(self._settings.benchmark_time_zone)
        starts = [dt.datetime.combine(m, dt.time(), zone) for m in months]
        rows = client.execute(
            "SELECT period_start, max(computed_at) FROM "
            f"{self._settings.clickhouse_database}.kpi_values "
            "WHERE grain = 'MONTH' AND period_start IN %(starts)s GROUP BY period_start",
            {"starts": tuple(starts)},
        )
        return {start.replace(tzinfo=dt.UTC).astimezone(zone).date(): at for start, at in rows}

    def run_once(self) -> int:
        """Reassess the months due, then export the entity figures (also when the
        reassessment failed; a failed export fails the pass too); the number of results
        published."""
        client = connect(self._settings)
        published = 0
        try:
            months, written = self.due(client)
            current = month_start(self._today())
            assessed: set[tuple[str, dt.date]] = set()
            for month, reason in sorted(months.items()):
                started = time.perf_counter()
                for grain in ("MONTH", "QUARTER", "YEAR"):
                    start = period_start(month, grain)
                    if (grain, start) in assessed:
                        continue  # both months due in one quarter: it is assessed once
                    assessed.add((grain, start))
                    results = assess_period(
                        self._settings, self._catalogues, grain, start, self._reports, current
                    )
                    published += self._publish(grain, start, results)
                REFRESH_SECONDS.observe(time.perf_counter() - started)
                REFRESHES.labels(reason).inc()
                if month in written:
                    self.assessed(month, written[month])
                if reason == "periodic":
                    self._last_full = self._monotonic()
        finally:
            try:
                if self._watch is not None:
                    self._watch.run(client)
            finally:
                client.disconnect()
        LAST_REFRESH.set_to_current_time()
        return published

    def _publish(self, grain: str, start: dt.date, results: Sequence[Result]) -> int:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        changed = []
        for result in results:
            key = (result.catalogue_version, start, result.standard, result.entity_id, grain)
            standing: Standing = (
                result.level,
                round(result.score, 6),
                result.in_peer_group.rank,
                result.national.rank,
                round(result.in_peer_group.percentile, 6),
                result.in_peer_group.peer_count,
                round(result.national.percentile, 6),
            )
            if self._published.get(key) != standing:
                changed.append((key, standing, result))
        records = [
            (result.entity_id.encode(), self._envelope(result, grain, start, now))
            for _, _, result in changed
        ]
        self._producer.send_and_wait(self._topic, records)
        for key, standing, _ in changed:
            self._published[key] = standing
        RESULTS_PUBLISHED.inc(len(changed))
        return len(changed)

    def _envelope(self, result: Result, grain: str, start: dt.date, now: dt.datetime) -> bytes:
        stored = stored_of(result, grain, start, now.replace(tzinfo=None))
        message = message_of(stored, time_zone=self._settings.benchmark_time_zone)
        envelope = wrap(message, result.entity_id, Timestamp(seconds=int(now.timestamp())), SOURCE)
        envelope.id = "/".join(
            (
                result.entity_id,
                result.standard,
                grain,
                period_label(grain, start),
                result.catalogue_version,
                str(int(now.timestamp())),
            )
        )
        return envelope.SerializeToString()


def run_worker(settings: BenchmarkSettings) -> None:
    """Refresh until SIGTERM (metrics on ``benchmark_worker_metrics_port``)."""
    catalogues = load_catalogues(settings.catalogue_dir)
    start_http_server(settings.benchmark_worker_metrics_port)
    # Its topic and tables exist before the first pass, whoever else has started.
    retrying(lambda: ensure_topics(settings.kafka_bootstrap, settings.topic_prefix))
    retrying(lambda: migrate(connect(settings, database="default"), settings.clickhouse_database))
    indicators = IndicatorsClient(
        settings.benchmark_indicators_target,
        settings.benchmark_token.get_secret_value(),
        ca_certificate=settings.benchmark_indicators_ca,
    )
    producer = AcknowledgedProducer(settings.kafka_bootstrap, 30_000, "pcm-benchmark")
    # The entity figures read the plan book on a connection of their own, once per pass.
    watch = EntityWatch(
        settings,
        catalogues,
        lambda: connect_postgres(
            settings, autocommit=True, application_name="pcm-benchmark-worker-watch"
        ),
    )
    refresher = Refresher(
        settings, catalogues, indicators.list_indicator_values, producer, watch=watch
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = LeaderLock(settings, "pcm-benchmark-worker")
    try:
        while not stop.is_set():
            refresh_as_leader(lock, refresher)
            stop.wait(settings.benchmark_refresh_s)
    finally:
        lock.release()
        WORKER_LEADER.set(0)
        producer.close()
        indicators.close()


def refresh_as_leader(lock: LeaderLock, refresher: Refresher) -> None:
    """One pass if this replica leads (takes the lock when free); a standby only waits."""
    try:
        leading = lock.alive() or lock.held()
    except psycopg.Error as error:  # PostgreSQL down: nobody can prove leadership
        lock.release()
        leading = False
        log.warning("benchmark worker: leader lock unavailable", error=str(error))
    WORKER_LEADER.set(1 if leading else 0)
    if not leading:
        drop_entity_figures()  # only the leader's figures: a standby's would go stale
        return
    try:
        published = refresher.run_once()
        if published:
            log.info("benchmark refreshed", published=published)
    except Exception:  # a store or the indicators service down: retried next pass
        REFRESH_ERRORS.inc()
        log.exception("benchmark refresh failed")
