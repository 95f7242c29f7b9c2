"""Composition root of the intake service: settings, catalogues, the push kit, gRPC."""

from __future__ import annotations

import grpc
from pcm.monitoring.v1 import intake_service_pb2, intake_service_pb2_grpc
from pcm_common.catalogues import load_catalogues
from pcm_common.grpc_server import Lifecycle, ServerOptions, TlsFiles, serve
from pcm_common.kafka.producer import EventProducer
from pcm_common.logging import get_logger
from pcm_common.postgres.migrate import POSTGRES_GROUPS
from pcm_common.push import PushKit, PushLimits
from pcm_common.push.wiring import build_kit
from pcm_common.startup import ensure_topics, migrate_postgres, retrying

from pcm_intake.metrics import METRICS
from pcm_intake.service import IntakeServicer
from pcm_intake.settings import IntakeSettings
from pcm_intake.validation import IntakeCatalogue

log = get_logger(__name__)
SERVICE_NAME = intake_service_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name


def limits(settings: IntakeSettings) -> PushLimits:
    return PushLimits(
        max_batch=settings.intake_max_batch,
        rate_limit_events_per_s=settings.intake_rate_limit_events_per_s,
        retry_after_s=settings.intake_retry_after_s,
        future_skew_s=settings.intake_future_skew_s,
        max_age_days=settings.intake_max_age_days,
    )


def lifecycle(
    settings: IntakeSettings, producer: EventProducer | None = None
) -> tuple[Lifecycle, PushKit]:
    """Everything the intake serves, built from settings (a producer may be given: tests)."""
    kit = build_kit(
        settings,
        limits(settings),
        METRICS,
        "pcm-intake",
        settings.intake_dedupe_window,
        settings.intake_workers,
        producer,
    )
    servicer = IntakeServicer(kit, IntakeCatalogue.of(load_catalogues(settings.catalogue_dir)))
    life = Lifecycle(
        name="pcm-intake",
        options=ServerOptions(
            address=settings.intake_address,
            max_message_bytes=settings.intake_max_message_bytes,
            workers=settings.intake_workers,
            tls=TlsFiles.optional(settings.intake_tls_cert, settings.intake_tls_key),
        ),
        registrars=[
            lambda server: intake_service_pb2_grpc.add_IntakeServiceServicer_to_server(
                servicer, server
            )
        ],
        service_names=[SERVICE_NAME],
        undecodable=METRICS.undecodable,
        metrics_port=settings.intake_metrics_port,
        metrics_host=settings.metrics_host,
        on_stop=kit.close,
    )
    return life, kit


def create_server(
    settings: IntakeSettings, producer: EventProducer | None = None
) -> tuple[grpc.Server, int, PushKit]:
    """A server ready to start (tests run it in-process), its port and its kit (to close)."""
    life, kit = lifecycle(settings, producer)
    server, _, port = life.build()
    return server, port, kit


def run(settings: IntakeSettings) -> None:
    """Prepare the stores, then serve until SIGTERM (see ``pcm_common.grpc_server.serve``)."""
    try:
        ensure_topics(settings)
    except Exception as error:  # the service still starts: calls answer UNAVAILABLE meanwhile
        log.warning("could not ensure topics at start", error=str(error))
    if settings.push_ledger == "postgres":
        retrying(lambda: migrate_postgres(settings, POSTGRES_GROUPS))
    serve(lifecycle(settings)[0])
