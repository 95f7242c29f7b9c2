"""Composition root of the intake service: settings, catalogues, the push kit, gRPC."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import intake_service_pb2, intake_service_pb2_grpc
from pcm_common.catalogues import load_catalogues
from pcm_common.grpc_server import Lifecycle, serve
from pcm_common.kafka.producer import EventProducer
from pcm_common.logging import get_logger
from pcm_common.postgres.migrate import POSTGRES_GROUPS
from pcm_common.push import PushKit
from pcm_common.push.wiring import build_kit, built, push_lifecycle, push_limits
from pcm_common.startup import ensure_topics, migrate_postgres, retrying

from pcm_intake.metrics import METRICS
from pcm_intake.service import IntakeServicer
from pcm_intake.settings import IntakeSettings
from pcm_intake.validation import IntakeCatalogue

log = get_logger(__name__)
SERVICE = intake_service_pb2.DESCRIPTOR.services_by_name["IntakeService"]


def lifecycle(
    settings: IntakeSettings, producer: EventProducer | None = None
) -> tuple[Lifecycle, PushKit]:
    """Everything the intake serves, built from settings (a producer may be given: tests)."""
    kit = build_kit(
        settings,
        push_limits(settings, "intake"),
        METRICS,
        "pcm-intake",
        settings.intake_dedupe_window,
        settings.intake_workers,
        producer,
    )
    servicer = IntakeServicer(kit, IntakeCatalogue.of(load_catalogues(settings.catalogue_dir)))
    life = push_lifecycle(
        settings,
        "intake",
        SERVICE,
        lambda server: intake_service_pb2_grpc.add_IntakeServiceServicer_to_server(
            servicer, server
        ),
        kit,
    )
    return life, kit


def create_server(
    settings: IntakeSettings, producer: EventProducer | None = None
) -> tuple[grpc.Server, int, PushKit]:
    return built(*lifecycle(settings, producer))


def run(settings: IntakeSettings) -> None:
    """Prepare the stores, then serve until SIGTERM (see ``pcm_common.grpc_server.serve``)."""
    try:
        ensure_topics(settings)
    except Exception as error:  # the service still starts: calls answer UNAVAILABLE meanwhile
        log.warning("could not ensure topics at start", error=str(error))
    if settings.push_ledger == "postgres":
        retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    serve(lifecycle(settings)[0])
