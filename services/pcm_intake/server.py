"""Composition root of the intake service: wires settings, catalogues, tokens, Kafka, gRPC."""

from __future__ import annotations

import signal
import threading

import grpc
from pcm.monitoring.v1 import intake_service_pb2, intake_service_pb2_grpc
from pcm_common.auth import TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.grpc_server import ServerOptions, TlsFiles, build_server
from pcm_common.kafka.admin import ensure_topics
from pcm_common.kafka.producer import AcknowledgedProducer
from pcm_common.logging import get_logger
from pcm_common.metrics import serve_metrics

from pcm_intake.service import IntakeServicer
from pcm_intake.settings import IntakeSettings
from pcm_intake.validation import IntakeCatalogue

log = get_logger(__name__)
SERVICE_NAME = intake_service_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name


def intake_catalogue(catalogues: Catalogues) -> IntakeCatalogue:
    """Index the catalogue once: which services each entity may report, per kind."""
    attention: dict[str, frozenset[str]] = {}
    procedures: dict[str, frozenset[str]] = {}
    for entity in catalogues.entities:
        offered = catalogues.services_for(entity.entity_id)
        attention[entity.entity_id] = frozenset(s.service_id for s in offered)
        procedures[entity.entity_id] = frozenset(
            s.service_id for s in offered if s.kind == "TRAMITE"
        )
    return IntakeCatalogue(
        channels=frozenset(channel.code for channel in catalogues.channels),
        attention_services=attention,
        procedure_services=procedures,
    )


def tls_files(settings: IntakeSettings) -> TlsFiles | None:
    if settings.intake_tls_cert and settings.intake_tls_key:
        return TlsFiles(settings.intake_tls_cert, settings.intake_tls_key)
    return None


def create_server(settings: IntakeSettings) -> tuple[grpc.Server, int, AcknowledgedProducer]:
    catalogue = intake_catalogue(load_catalogues(settings.catalogue_dir))
    producer = AcknowledgedProducer(
        settings.kafka_bootstrap, settings.kafka_request_timeout_ms, "pcm-intake"
    )
    servicer = IntakeServicer(
        settings,
        catalogue,
        TokenStore(settings.token_file, settings.token_reload_interval_s),
        producer,
    )
    options = ServerOptions(
        address=settings.intake_address,
        max_message_bytes=settings.intake_max_message_bytes,
        workers=settings.intake_workers,
        tls=tls_files(settings),
    )
    server, _, port = build_server(
        options,
        [lambda s: intake_service_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s)],
        [SERVICE_NAME],
    )
    return server, port, producer


def serve(settings: IntakeSettings) -> None:
    """Run until SIGTERM/SIGINT; in-flight calls get a grace period to finish."""
    try:
        ensure_topics(
            settings.kafka_bootstrap, settings.topic_prefix, settings.kafka_replication_factor
        )
    except Exception as error:  # the service still starts: calls answer UNAVAILABLE meanwhile
        log.warning("could not ensure topics at start", error=str(error))
    serve_metrics(settings.intake_metrics_port, settings.metrics_host)
    server, port, producer = create_server(settings)
    server.start()
    log.info(
        "intake serving",
        address=settings.intake_address,
        port=port,
        tls=tls_files(settings) is not None,
        metrics_port=settings.intake_metrics_port,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    log.info("intake stopping")
    server.stop(grace=10).wait()
    producer.close()
