"""Composition root of the indicators service and its worker: settings, catalogues, the
indicator book, the push kit, gRPC; the outbox relay."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import indicators_service_pb2, indicators_service_pb2_grpc
from pcm_common import domains
from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.client import connect as clickhouse
from pcm_common.grpc_server import Lifecycle, serve
from pcm_common.kafka.producer import EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.outbox import BookSink, Outbox, OutboxWorker, outbox_worker
from pcm_common.outbox import run_worker as run_shared_worker
from pcm_common.postgres.client import pool
from pcm_common.postgres.migrate import POSTGRES_GROUPS
from pcm_common.push import PushKit
from pcm_common.push.wiring import push_lifecycle, push_limits, token_store
from pcm_common.startup import migrate_postgres, retrying

from pcm_indicators.book import OUTBOX_CHANNEL, IndicatorBook
from pcm_indicators.kpis import KpiReader
from pcm_indicators.metrics import METRICS, OUTBOX, STORE_ERRORS
from pcm_indicators.service import IndicatorsServicer
from pcm_indicators.settings import IndicatorsSettings
from pcm_indicators.validation import IndicatorRules

SERVICE = indicators_service_pb2.DESCRIPTOR.services_by_name["IndicatorsService"]


def lifecycle(settings: IndicatorsSettings) -> tuple[Lifecycle, PushKit]:
    catalogues = load_catalogues(settings.catalogue_dir)
    connections = pool(
        settings, max_size=settings.indicators_workers + 1, application_name="pcm-indicators"
    )
    connections.open(wait=False)
    book = IndicatorBook(connections, settings.indicators_time_zone)
    kit = PushKit(
        push_limits(settings, "indicators"),
        token_store(settings),
        BookSink(
            {domains.INDICATOR_VALUE.name: book.report}, connections, STORE_ERRORS, "indicator book"
        ),
        METRICS,
    )
    rules = IndicatorRules(catalogues, settings.indicators_time_zone)
    kpis = KpiReader(
        lambda: clickhouse(settings),
        settings.clickhouse_database,
        catalogues,
        settings.indicators_time_zone,
    )
    servicer = IndicatorsServicer(kit, rules, book, kpis, settings.indicators_page_size)
    life = push_lifecycle(
        settings,
        "indicators",
        SERVICE,
        lambda server: indicators_service_pb2_grpc.add_IndicatorsServiceServicer_to_server(
            servicer, server
        ),
        kit,
    )
    return life, kit


def create_server(settings: IndicatorsSettings) -> tuple[grpc.Server, int, PushKit]:
    life, kit = lifecycle(settings)
    server, _, port = life.build()
    return server, port, kit


def run(settings: IndicatorsSettings) -> None:
    retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    serve(lifecycle(settings)[0])


def worker(settings: IndicatorsSettings, producer: EventProducer | None = None) -> OutboxWorker:
    connections = pool(settings, max_size=2, application_name="pcm-indicators-worker")
    connections.open(wait=False)
    return outbox_worker(
        settings,
        "pcm-indicators-worker",
        connections,
        Outbox(
            "indicator_outbox",
            OUTBOX_CHANNEL,
            topic_for_domain(domains.INDICATOR_VALUE.name).name(settings.topic_prefix),
        ),
        OUTBOX,
        settings.indicators_relay_batch,
        idle_s=settings.indicators_relay_idle_s,
        retention_days=settings.indicators_outbox_retention_days,
        producer=producer,
    )


def run_worker(settings: IndicatorsSettings) -> None:
    run_shared_worker(settings, lambda: worker(settings), settings.indicators_worker_metrics_port)
