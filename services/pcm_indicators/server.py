"""Composition root of the indicators service and its worker: settings, catalogues, the
indicator book, the push kit, gRPC; the outbox relay."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import indicators_service_pb2, indicators_service_pb2_grpc
from pcm_common import domains
from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.client import connect as clickhouse
from pcm_common.grpc_server import Lifecycle
from pcm_common.kafka.producer import EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.outbox import Outbox, OutboxWorker, outbox_worker
from pcm_common.outbox import run_worker as run_shared_worker
from pcm_common.postgres.client import open_pool
from pcm_common.push import PushKit
from pcm_common.push.wiring import book_kit, built, push_lifecycle, serve_book_service

from pcm_indicators.book import OUTBOX_CHANNEL, IndicatorBook
from pcm_indicators.kpis import KpiReader
from pcm_indicators.metrics import METRICS, OUTBOX, STORE_ERRORS
from pcm_indicators.service import IndicatorsServicer
from pcm_indicators.settings import IndicatorsSettings
from pcm_indicators.validation import IndicatorRules

SERVICE = indicators_service_pb2.DESCRIPTOR.services_by_name["IndicatorsService"]


def lifecycle(settings: IndicatorsSettings) -> tuple[Lifecycle, PushKit]:
    catalogues = load_catalogues(settings.catalogue_dir)
    connections = open_pool(settings, settings.indicators_workers + 1, "pcm-indicators")
    book = IndicatorBook(connections, settings.indicators_time_zone)
    kit = book_kit(
        settings,
        "indicators",
        {domains.INDICATOR_VALUE.name: book.report},
        connections,
        METRICS,
        STORE_ERRORS,
        "indicator book",
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
    return built(*lifecycle(settings))


def run(settings: IndicatorsSettings) -> None:
    serve_book_service(settings, lifecycle(settings)[0])


def worker(settings: IndicatorsSettings, producer: EventProducer | None = None) -> OutboxWorker:
    connections = open_pool(settings, 2, "pcm-indicators-worker")
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
