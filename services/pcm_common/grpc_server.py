"""What every gRPC service of the platform shares: one server shape (health, reflection, optional
TLS, message-size limits, undecodable requests answered INVALID_ARGUMENT), the authentication
guard, machine-readable errors, and one ``serve`` lifecycle (metrics port, SIGTERM drain).

Errors carry a ``google.rpc.ErrorInfo`` whose ``reason`` is an ``ErrorReason`` name (common.proto)
in the rich status trailer, so clients branch on a code, never on message text.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from prometheus_client import Counter

from pcm_common.auth import AuthError, Principal, TokenStore
from pcm_common.logging import get_logger
from pcm_common.metrics import serve_metrics

log = get_logger(__name__)

ERROR_DOMAIN = "monitoring.pcm.gob.pe"

# Registers a servicer on a server, e.g. intake_service_pb2_grpc.add_IntakeServiceServicer_to_server
Registrar = Callable[[grpc.Server], None]


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path

    @classmethod
    def optional(cls, certificate: Path | None, private_key: Path | None) -> TlsFiles | None:
        return cls(certificate, private_key) if certificate and private_key else None


@dataclass(frozen=True)
class ServerOptions:
    address: str
    max_message_bytes: int
    workers: int
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def abort_with(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    retry_after_s: float | None = None,
) -> NoReturn:
    """End the call with ``code``, a message for people and an ErrorInfo ``reason`` for programs.

    With ``retry_after_s``: a google.rpc.RetryInfo, gRPC's standard pushback trailer (which
    grpc clients with a retry policy honour) and a plain ``retry-after-ms`` trailer.
    """
    status = status_pb2.Status(code=code_pb2.Code.Value(code.name), message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    metadata: list[tuple[str, str | bytes]] = []
    if retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after_s * 1000))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        delay_ms = str(int(retry_after_s * 1000))
        metadata += [("grpc-retry-pushback-ms", delay_ms), ("retry-after-ms", delay_ms)]
    rich = rpc_status.to_status(status)
    context.abort_with_status(
        _Status(rich.code, rich.details, (*rich.trailing_metadata, *metadata))
    )
    raise AssertionError("unreachable: context.abort_with_status raises")  # for type checkers


def error_reason(error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason of a failed call (client side), e.g. 'ERROR_REASON_TOKEN_REVOKED'."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # a failed call is a Call
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return None


def authenticate(context: grpc.ServicerContext, store: TokenStore, failures: Counter) -> Principal:
    """The caller's principal, or abort with UNAUTHENTICATED (reason, never the token)."""
    metadata = dict(context.invocation_metadata())
    authorization = metadata.get("authorization")
    try:
        return store.authenticate(authorization if isinstance(authorization, str) else None)
    except AuthError as error:
        failures.labels(reason=error.failure.value).inc()
        abort_with(context, grpc.StatusCode.UNAUTHENTICATED, error.failure.value, str(error))


if TYPE_CHECKING:
    Interceptor = grpc.ServerInterceptor[Any, Any]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
else:  # generic only in the type stubs
    Interceptor = grpc.ServerInterceptor
    MethodHandler = grpc.RpcMethodHandler


class _Undecodable:
    """Stands for a request whose bytes did not parse, until the handler answers it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class DecodeGuard(Interceptor):
    """Undecodable request bytes get INVALID_ARGUMENT with the reason and a metric, instead of
    gRPC's generic INTERNAL "Exception deserializing request!"."""

    def __init__(self, undecodable: Counter) -> None:
        self._undecodable = undecodable

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], MethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        # Requests that are one message: unary calls and server streams (ExportResults).
        behaviour = handler.unary_unary or handler.unary_stream
        if behaviour is None:
            return handler
        method = str(details.method)
        parse = handler.request_deserializer

        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as error:  # DecodeError, or anything a broken payload raises
                return _Undecodable(error)

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                self._undecodable.labels(method=method).inc()
                abort_with(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "ERROR_REASON_UNDECODABLE_REQUEST",
                    f"the request bytes are not a valid {method} request: {request.error}"[:300],
                )
            return behaviour(request, context)

        wrap = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary is not None
            else grpc.unary_stream_rpc_method_handler
        )
        return wrap(
            guarded,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )


def build_server(
    options: ServerOptions,
    registrars: Iterable[Registrar],
    service_names: Iterable[str],
    undecodable: Counter,
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A server ready to start; returns it, its health servicer and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        interceptors=[DecodeGuard(undecodable)],
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


@dataclass(frozen=True)
class Lifecycle:
    """How one gRPC service process runs: what to serve, and what to close after draining."""

    name: str
    options: ServerOptions
    registrars: Sequence[Registrar]
    service_names: Sequence[str]
    undecodable: Counter
    metrics_port: int
    metrics_host: str
    drain_s: float = 10.0
    on_stop: Callable[[], None] = lambda: None

    def build(self) -> tuple[grpc.Server, health.HealthServicer, int]:
        return build_server(self.options, self.registrars, self.service_names, self.undecodable)


def serve(lifecycle: Lifecycle) -> None:
    """Serve until SIGTERM/SIGINT, then drain: health turns NOT_SERVING (load balancers stop
    sending), in-flight calls get ``drain_s`` to finish, then ``on_stop`` closes producers."""
    if lifecycle.metrics_port:
        serve_metrics(lifecycle.metrics_port, lifecycle.metrics_host)
    server, health_servicer, port = lifecycle.build()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start()
    log.info(
        f"{lifecycle.name} serving",
        address=lifecycle.options.address,
        port=port,
        tls=lifecycle.options.tls is not None,
        metrics_port=lifecycle.metrics_port,
    )
    stopping.wait()
    log.info(f"{lifecycle.name} draining", grace_s=lifecycle.drain_s)
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=lifecycle.drain_s).wait()
    lifecycle.on_stop()
    log.info(f"{lifecycle.name} stopped")
