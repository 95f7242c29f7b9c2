"""Building blocks every gRPC service of the platform shares: server with health, reflection,
optional TLS, message-size limits, and the authentication guard."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pcm_common.auth import AuthError, Principal, TokenStore
from pcm_common.metrics import INTAKE_AUTH_FAILURES

# Registers a servicer on a server, e.g. intake_service_pb2_grpc.add_IntakeServiceServicer_to_server
Registrar = Callable[[grpc.Server], None]


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class ServerOptions:
    address: str
    max_message_bytes: int
    workers: int
    tls: TlsFiles | None = None


def build_server(
    options: ServerOptions, registrars: Iterable[Registrar], service_names: Iterable[str]
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A started-ready server; returns it, its health servicer and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        options=[
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.max_send_message_length", options.max_message_bytes),
        ],
    )
    for register in registrars:
        register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = _bind(server, options)
    return server, health_servicer, port


def _bind(server: grpc.Server, options: ServerOptions) -> int:
    if options.tls is None:
        return server.add_insecure_port(options.address)
    credentials = grpc.ssl_server_credentials(
        [(options.tls.private_key.read_bytes(), options.tls.certificate.read_bytes())]
    )
    return server.add_secure_port(options.address, credentials)


def authenticate(context: grpc.ServicerContext, store: TokenStore) -> Principal:
    """The caller's principal, or abort the call with UNAUTHENTICATED (reason, never the token)."""
    metadata = dict(context.invocation_metadata())
    authorization = metadata.get("authorization")
    try:
        return store.authenticate(authorization if isinstance(authorization, str) else None)
    except AuthError as error:
        INTAKE_AUTH_FAILURES.labels(reason=str(error)).inc()
        abort(context, grpc.StatusCode.UNAUTHENTICATED, str(error))


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")  # for type checkers
