"""The refresh worker on the real ClickHouse, Kafka and PostgreSQL: a changed KPI is reassessed on
the next pass and only the results that changed are published; replicas elect one leader."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pcm.monitoring.v1 import benchmark_pb2, common_pb2
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.worker import Refresher, refresh_as_leader
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.producer import AcknowledgedProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect as postgres
from pcm_common.postgres.leader import LeaderLock
from pcm_testkit.isolation import isolated
from pcm_testkit.kafka import read_envelopes
from pcm_testkit.kpis import kpi_value_row
from pcm_testkit.waiting import wait_until
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

LIMA = ZoneInfo("America/Lima")
TODAY = dt.date(2026, 10, 20)
OCTOBER = dt.datetime(2026, 10, 1, tzinfo=LIMA)


def test_a_changed_kpi_is_reassessed_and_only_changes_are_published(
    catalogues: Catalogues,
) -> None:
    with isolated("benchworker") as shared:
        settings = BenchmarkSettings(**shared.model_dump(), benchmark_full_refresh_s=3600)
        ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
        client = connect(settings, database="default")
        migrate(client, settings.clickhouse_database)
        table = f"{settings.clickhouse_database}.kpi_values"
        written = dt.datetime(2026, 10, 20, 12, 0)

        def seed(entity: str, within: float, version: int, at: dt.datetime) -> None:
            row = kpi_value_row(
                entity, "SERVED_WITHIN_TARGET_PCT", OCTOBER, within, version=version, computed_at=at
            )
            client.execute(f"INSERT INTO {table} VALUES", [row])

        seed("RENIEC", 65, 1, written)
        seed("SUNARP", 50, 1, written)
        producer = AcknowledgedProducer(settings.kafka_bootstrap, 10_000, "test")
        try:
            refresher = Refresher(settings, catalogues, lambda _: [], producer, lambda: TODAY)
            first = refresher.run_once()
            per_result = len(catalogues.entities) * (len(catalogues.standards) + 1)
            # The first pass publishes every result once: of the month, its quarter and year.
            assert first == 3 * per_result
            assert refresher.run_once() == 0  # nothing changed: nothing reassessed
            seed("SUNARP", 70, 2, written + dt.timedelta(minutes=1))  # the processor updates
            changed = refresher.run_once()
        finally:
            producer.close()
        topic = topic_for_domain("benchmark_result").name(settings.topic_prefix)
        published = read_envelopes(settings.kafka_bootstrap, topic, first + changed)
        assert len(published) == first + changed
        latest: dict[tuple[str, str, int], benchmark_pb2.BenchmarkResult] = {}
        for key, envelope in published:
            result = envelope.benchmark_result
            assert key == result.entity_id.encode()
            latest[(result.entity_id, result.standard_code, result.grain)] = result
        for grain in (common_pb2.GRAIN_MONTH, common_pb2.GRAIN_QUARTER, common_pb2.GRAIN_YEAR):
            sunarp = latest[("SUNARP", "PUNTUALIDAD", grain)]
            assert sunarp.level == benchmark_pb2.STANDARD_LEVEL_BASICO  # 70 % within target now
            reniec = latest[("RENIEC", "PUNTUALIDAD", grain)]
            assert reniec.level == benchmark_pb2.STANDARD_LEVEL_BASICO
        # SUNARP's standard and overall changed, and the ranks it now ties or passes, in the
        # month, its quarter and its year.
        assert 6 <= changed < per_result


class CountingRefresher:
    """Stands in for the Refresher: counts the passes it was asked for."""

    def __init__(self) -> None:
        self.passes = 0

    def run_once(self) -> int:
        self.passes += 1
        return 0


def test_replicas_elect_one_leader_and_a_standby_takes_over_when_it_dies() -> None:
    with isolated("benchleader") as shared:
        settings = BenchmarkSettings(**shared.model_dump())
        first, second = LeaderLock(settings, "w"), LeaderLock(settings, "w")
        leading, standby = CountingRefresher(), CountingRefresher()
        try:
            for _ in range(3):
                refresh_as_leader(first, leading)  # type: ignore[arg-type]
                refresh_as_leader(second, standby)  # type: ignore[arg-type]
            assert (leading.passes, standby.passes) == (3, 0)
            assert REGISTRY.get_sample_value("pcm_benchmark_worker_leader") == 0  # the last call
            # The leader's session dies (a kill -9, a network cut): PostgreSQL drops its lock.
            assert first.connection is not None
            pid = first.connection.info.backend_pid
            with postgres(settings, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_until(
                lambda: (refresh_as_leader(second, standby), standby.passes)[1] > 0,
                10,
                "the standby did not take over",
            )
            assert REGISTRY.get_sample_value("pcm_benchmark_worker_leader") == 1
            refresh_as_leader(first, leading)  # the old leader finds its lock gone: standby now
            assert leading.passes == 3
        finally:
            first.release()
            second.release()


def test_two_months_due_assess_their_shared_year_once(catalogues: Catalogues) -> None:
    with isolated("benchtwo") as shared:
        settings = BenchmarkSettings(**shared.model_dump(), benchmark_full_refresh_s=3600)
        ensure_topics(settings.kafka_bootstrap, settings.topic_prefix)
        client = connect(settings, database="default")
        migrate(client, settings.clickhouse_database)
        written = dt.datetime(2026, 10, 20, 12, 0)
        rows = [
            kpi_value_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", month, 65, computed_at=written)
            for month in (dt.datetime(2026, 9, 1, tzinfo=LIMA), OCTOBER)
        ]
        client.execute(f"INSERT INTO {settings.clickhouse_database}.kpi_values VALUES", rows)
        producer = AcknowledgedProducer(settings.kafka_bootstrap, 10_000, "test")
        try:
            refresher = Refresher(settings, catalogues, lambda _: [], producer, lambda: TODAY)
            published = refresher.run_once()
        finally:
            producer.close()
        per_result = len(catalogues.entities) * (len(catalogues.standards) + 1)
        # September, Q3, 2026, October, Q4: the year once.
        assert published == 5 * per_result
        grains = client.execute(
            "SELECT toString(grain) AS g, count(DISTINCT period_start) FROM "
            f"{settings.clickhouse_database}.benchmark_results GROUP BY g ORDER BY g"
        )
        assert grains == [("MONTH", 2), ("QUARTER", 2), ("YEAR", 1)]
