"""What every method of the benchmark's gRPC services shares: the caller authenticated, the
national role checked, calls counted and timed, and a store that did not answer turned into
UNAVAILABLE with a retry hint."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import psycopg
from pcm_common.auth import Principal, Role, TokenStore
from pcm_common.grpc_server import abort_with, authenticate
from pcm_common.push.reading import refuse_nul
from pcm_common.validation import nul_fields
from psycopg_pool import PoolTimeout

from pcm_benchmark.metrics import AUTH_FAILURES, DENIED, REQUEST_SECONDS, REQUESTS, STORE_ERRORS

STORE_UNAVAILABLE = "ERROR_REASON_STORE_UNAVAILABLE"
T = TypeVar("T")


class StoreDown(Exception):
    """A store did not answer: the call is UNAVAILABLE (retry)."""

    def __init__(self, store: str, message: str) -> None:
        super().__init__(message)
        self.store = store


def observed(method: Callable[..., T]) -> Callable[..., T]:
    """Count and time a unary method; a store that did not answer ends it UNAVAILABLE."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: Guarded, request: Any, context: grpc.ServicerContext) -> T:
        started = time.perf_counter()
        try:
            with self.stores(context):
                if nul_fields(request):  # PostgreSQL refuses NUL in text (the call was UNKNOWN)
                    self._caller(context)  # who asks first, then what is wrong with it
                    refuse_nul(context, request)
                return method(self, request, context)
        finally:
            REQUEST_SECONDS.labels(method=name).observe(time.perf_counter() - started)
            REQUESTS.labels(method=name, code=status_name(context)).inc()

    return wrapper


def status_name(context: grpc.ServicerContext) -> str:
    code = getattr(context, "code", lambda: None)()
    return "OK" if code is None else str(code.name)


class _Stores:
    """Turns a store failure into UNAVAILABLE with a retry hint (a context manager)."""

    def __init__(self, context: grpc.ServicerContext, retry_after_s: float) -> None:
        self._context = context
        self._retry_after_s = retry_after_s

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        if isinstance(error, (psycopg.OperationalError, PoolTimeout)):
            error = StoreDown("postgres", "plan store (PostgreSQL) unavailable")
        if isinstance(error, StoreDown):
            STORE_ERRORS.labels(store=error.store).inc()
            abort_with(
                self._context,
                grpc.StatusCode.UNAVAILABLE,
                STORE_UNAVAILABLE,
                f"{error}; retry (retry after {self._retry_after_s:g} s)",
                retry_after_s=self._retry_after_s,
            )


class Guarded:
    """The base of the benchmark's servicers: who calls, and whether the role may."""

    def __init__(self, tokens: TokenStore, retry_after_s: float) -> None:
        self._tokens = tokens
        self._retry_after_s = retry_after_s

    def stores(self, context: grpc.ServicerContext) -> _Stores:
        return _Stores(context, self._retry_after_s)

    def _caller(self, context: grpc.ServicerContext) -> Principal:
        return authenticate(context, self._tokens, AUTH_FAILURES)

    def _national(self, context: grpc.ServicerContext, what: str, instead: str) -> Principal:
        """The caller, if of the national role; else PERMISSION_DENIED saying what it may do
        ``instead``."""
        principal = self._caller(context)
        if principal.role is not Role.NATIONAL:
            reason = "ERROR_REASON_ROLE_NOT_ALLOWED"
            DENIED.labels(reason=reason).inc()
            abort_with(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                reason,
                f"only the national role may {what}; a {principal.role.value} credential may "
                f"{instead}",
            )
        return principal
