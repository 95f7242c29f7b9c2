"""Composition root of the benchmark service (``pcm-benchmark serve``): settings, catalogues,
ClickHouse (results, KPIs), the plan book and the catalogue registry (PostgreSQL), the
BenchmarkService and the CatalogueService on one gRPC server with health, reflection, optional
TLS, metrics and a graceful stop (``pcm_common.grpc_server.serve``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import grpc
from pcm.monitoring.v1 import (
    benchmark_service_pb2,
    benchmark_service_pb2_grpc,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
)
from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.client import connect as clickhouse
from pcm_common.grpc_server import Lifecycle, ServerOptions, TlsFiles, serve
from pcm_common.postgres.client import open_pool
from pcm_common.push.wiring import token_store

from pcm_benchmark.catalogue_service import CatalogueServicer
from pcm_benchmark.metrics import UNDECODABLE
from pcm_benchmark.plans_book import PlanBook
from pcm_benchmark.service import BenchmarkServicer, ResultStore, ServiceConfig
from pcm_benchmark.settings import BenchmarkSettings

SERVICE = benchmark_service_pb2.DESCRIPTOR.services_by_name["BenchmarkService"]
CATALOGUE_SERVICE = catalogue_service_pb2.DESCRIPTOR.services_by_name["CatalogueService"]


def lifecycle(
    settings: BenchmarkSettings,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Lifecycle:
    """How the service runs; ``now`` is the clock plans are judged by (tests move it)."""
    catalogues = load_catalogues(settings.catalogue_dir)
    connections = open_pool(settings, settings.benchmark_workers + 1, "pcm-benchmark")
    tokens = token_store(settings)
    servicer = BenchmarkServicer(
        tokens,
        catalogues,
        ResultStore(lambda: clickhouse(settings), settings.clickhouse_database),
        PlanBook(connections),
        ServiceConfig(
            time_zone=settings.benchmark_time_zone,
            page_size=settings.benchmark_page_size,
            min_peers=settings.benchmark_min_peers,
            tolerance_points=settings.benchmark_plan_tolerance_points,
            retry_after_s=settings.benchmark_retry_after_s,
        ),
        now,
    )
    publishing = CatalogueServicer(
        tokens, catalogues, connections, settings.benchmark_retry_after_s
    )
    return Lifecycle(
        name="pcm-benchmark",
        options=ServerOptions(
            address=settings.benchmark_address,
            max_message_bytes=settings.benchmark_max_message_bytes,
            workers=settings.benchmark_workers,
            tls=TlsFiles.optional(settings.benchmark_tls_cert, settings.benchmark_tls_key),
        ),
        registrars=[
            lambda server: benchmark_service_pb2_grpc.add_BenchmarkServiceServicer_to_server(
                servicer, server
            ),
            lambda server: catalogue_service_pb2_grpc.add_CatalogueServiceServicer_to_server(
                publishing, server
            ),
        ],
        service_names=[SERVICE.full_name, CATALOGUE_SERVICE.full_name],
        undecodable=UNDECODABLE,
        metrics_port=settings.benchmark_metrics_port,
        metrics_host=settings.metrics_host,
        on_stop=connections.close,
    )


def create_server(
    settings: BenchmarkSettings,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> tuple[grpc.Server, int, Lifecycle]:
    """A server ready to start (tests run it in-process), its port, and its lifecycle (whose
    ``on_stop`` closes the plan book's connections)."""
    life = lifecycle(settings, now)
    server, _, port = life.build()
    return server, port, life


def run(settings: BenchmarkSettings) -> None:
    """Prepare the tables the service reads and writes (ClickHouse results, the plan book;
    advisory-locked, replicas may start together), then serve until SIGTERM."""
    # Imported here: the startup module imports every service's migration group.
    from pcm_common.clickhouse.migrate import CLICKHOUSE_GROUPS
    from pcm_common.postgres.migrate import POSTGRES_GROUPS
    from pcm_common.startup import migrate_clickhouse, migrate_postgres, retrying

    retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    retrying(lambda: migrate_clickhouse(settings, CLICKHOUSE_GROUPS))
    serve(lifecycle(settings))
