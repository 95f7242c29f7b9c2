"""Composition root of the surveys service and its worker."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import surveys_service_pb2, surveys_service_pb2_grpc
from pcm_common import domains
from pcm_common.catalogues import load_catalogues
from pcm_common.grpc_server import Lifecycle
from pcm_common.kafka.producer import EventProducer
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.outbox import Outbox, OutboxWorkers, outbox_worker
from pcm_common.outbox import run_worker as run_shared_worker
from pcm_common.postgres.client import open_pool
from pcm_common.push import PushKit
from pcm_common.push.wiring import book_kit, built, push_lifecycle, serve_book_service

from pcm_surveys.book import COLLECTION_CHANNEL, RESPONSE_CHANNEL, SurveyBook
from pcm_surveys.metrics import COLLECTIONS_OUTBOX, METRICS, RESPONSES_OUTBOX, STORE_ERRORS
from pcm_surveys.service import SurveysServicer
from pcm_surveys.settings import SurveysSettings
from pcm_surveys.validation import SurveyCatalogue

SERVICE = surveys_service_pb2.DESCRIPTOR.services_by_name["SurveysService"]


def lifecycle(settings: SurveysSettings) -> tuple[Lifecycle, PushKit]:
    catalogues = load_catalogues(settings.catalogue_dir)
    connections = open_pool(settings, settings.surveys_workers + 1, "pcm-surveys")
    book = SurveyBook(connections)
    recorders = {
        domains.SURVEY_COLLECTION.name: book.collections,
        domains.SURVEY_RESPONSE.name: book.responses,
    }
    kit = book_kit(
        settings, "surveys", recorders, connections, METRICS, STORE_ERRORS, "survey book"
    )
    servicer = SurveysServicer(
        kit, SurveyCatalogue.of(catalogues), book, settings.surveys_page_size
    )
    life = push_lifecycle(
        settings,
        "surveys",
        SERVICE,
        lambda server: surveys_service_pb2_grpc.add_SurveysServiceServicer_to_server(
            servicer, server
        ),
        kit,
    )
    return life, kit


def create_server(settings: SurveysSettings) -> tuple[grpc.Server, int, PushKit]:
    return built(*lifecycle(settings))


def run(settings: SurveysSettings) -> None:
    serve_book_service(settings, lifecycle(settings)[0])


def worker(settings: SurveysSettings, producer: EventProducer | None = None) -> OutboxWorkers:
    """One relay per published domain (collections, responses), one process."""
    relays = []
    for domain, channel, metrics in (
        (domains.SURVEY_COLLECTION, COLLECTION_CHANNEL, COLLECTIONS_OUTBOX),
        (domains.SURVEY_RESPONSE, RESPONSE_CHANNEL, RESPONSES_OUTBOX),
    ):
        connections = open_pool(settings, 2, f"pcm-surveys-{domain.name}")
        relays.append(
            outbox_worker(
                settings,
                f"pcm-surveys-{domain.name}-worker",
                connections,
                Outbox(channel, channel, topic_for_domain(domain.name).name(settings.topic_prefix)),
                metrics,
                settings.surveys_relay_batch,
                idle_s=settings.surveys_relay_idle_s,
                retention_days=settings.surveys_outbox_retention_days,
                producer=producer,
            )
        )
    return OutboxWorkers(relays)


def run_worker(settings: SurveysSettings) -> None:
    run_shared_worker(settings, lambda: worker(settings), settings.surveys_worker_metrics_port)
