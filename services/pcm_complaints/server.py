"""Composition root of the complaints service and its worker: settings, catalogues, the
complaint book, the push kit, gRPC; the relay and the overdue job."""

from __future__ import annotations

import datetime as dt

import grpc
from pcm.monitoring.v1 import complaints_service_pb2, complaints_service_pb2_grpc
from pcm_common import domains
from pcm_common.catalogues import load_catalogues
from pcm_common.grpc_server import Lifecycle
from pcm_common.kafka.producer import EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.logging import get_logger
from pcm_common.outbox import Outbox, OutboxWorker, outbox_worker
from pcm_common.outbox import run_worker as run_shared_worker
from pcm_common.postgres.client import open_pool
from pcm_common.push import PushKit
from pcm_common.push.wiring import book_kit, built, push_lifecycle, serve_book_service

from pcm_complaints.book import OUTBOX_CHANNEL, ComplaintBook
from pcm_complaints.metrics import METRICS, OUTBOX, STORE_ERRORS
from pcm_complaints.service import ComplaintsServicer
from pcm_complaints.settings import ComplaintsSettings
from pcm_complaints.validation import ComplaintCatalogue
from pcm_complaints.worker import OverdueJob, local_today

log = get_logger(__name__)
SERVICE = complaints_service_pb2.DESCRIPTOR.services_by_name["ComplaintsService"]


def lifecycle(settings: ComplaintsSettings) -> tuple[Lifecycle, PushKit]:
    """Everything the service serves, built from settings."""
    catalogues = load_catalogues(settings.catalogue_dir)
    book_connections = open_pool(settings, settings.complaints_workers + 1, "pcm-complaints")
    book = ComplaintBook(book_connections, catalogues, settings.complaints_time_zone)
    kit = book_kit(
        settings,
        "complaints",
        {domains.COMPLAINT.name: book.record},
        book_connections,
        METRICS,
        STORE_ERRORS,
        "complaint book",
    )
    servicer = ComplaintsServicer(kit, ComplaintCatalogue.of(catalogues), book)
    life = push_lifecycle(
        settings,
        "complaints",
        SERVICE,
        lambda server: complaints_service_pb2_grpc.add_ComplaintsServiceServicer_to_server(
            servicer, server
        ),
        kit,
    )
    return life, kit


def create_server(settings: ComplaintsSettings) -> tuple[grpc.Server, int, PushKit]:
    return built(*lifecycle(settings))


def run(settings: ComplaintsSettings) -> None:
    serve_book_service(settings, lifecycle(settings)[0])


def worker(
    settings: ComplaintsSettings,
    producer: EventProducer | None = None,
    today: dt.date | None = None,
) -> OutboxWorker:
    """The relay and overdue job, built from settings (``today``: an injected clock)."""
    catalogues = load_catalogues(settings.catalogue_dir)
    worker_connections = open_pool(settings, 2, "pcm-complaints-worker")
    book = ComplaintBook(worker_connections, catalogues, settings.complaints_time_zone)
    overdue = OverdueJob(
        book, local_today(settings.complaints_time_zone, today or settings.complaints_today)
    )
    return outbox_worker(
        settings,
        "pcm-complaints-worker",
        worker_connections,
        Outbox(
            "complaint_outbox",
            OUTBOX_CHANNEL,
            topic_for_domain(domains.COMPLAINT.name).name(settings.topic_prefix),
        ),
        OUTBOX,
        settings.complaints_relay_batch,
        [overdue.job(settings.complaints_overdue_interval_s)],
        settings.complaints_relay_idle_s,
        settings.complaints_outbox_retention_days,
        producer,
    )


def run_worker(settings: ComplaintsSettings) -> None:
    """Relay and overdue job until SIGTERM."""
    run_shared_worker(settings, lambda: worker(settings), settings.complaints_worker_metrics_port)
