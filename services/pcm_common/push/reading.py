"""What the push services' read methods share: who may read an entity's data, the page size,
and keyset page tokens (indicators, surveys).

A page token is the position of the last item of a page, ``(recorded_at, key)``, encoded; the
next page starts strictly after it in the order ``recorded_at DESC, key DESC``, so items stored
meanwhile never shift a page (no offsets).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import NoReturn

import grpc
from google.protobuf.message import Message

from pcm_common.auth import Access, Principal, authorize, denial_message
from pcm_common.grpc_server import abort_with, authenticate
from pcm_common.push.kit import PushKit
from pcm_common.validation import nul_fields


def allowed(
    kit: PushKit, context: grpc.ServicerContext, access: Access, entity_id: str
) -> Principal:
    """The caller, when its credential may ``access`` ``entity_id``'s data; else the call ends
    UNAUTHENTICATED or PERMISSION_DENIED (with the ErrorReason, counted by it)."""
    principal = authenticate(context, kit.tokens, kit.metrics.auth_failures)
    denial = authorize(principal, access, entity_id)
    if denial is not None:
        kit.metrics.denied.labels(reason=denial.value).inc()
        message = denial_message(principal, access, denial)
        abort_with(context, grpc.StatusCode.PERMISSION_DENIED, denial.value, message)
    return principal


def invalid_argument(context: grpc.ServicerContext, message: str) -> NoReturn:
    """End the call INVALID_ARGUMENT; ``message`` starts with the field and says why
    (``"page_token: not a token this service gave"``)."""
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("unreachable: context.abort raises")  # for type checkers


def refuse_nul(context: grpc.ServicerContext, request: Message) -> None:
    """End the call INVALID_ARGUMENT when a text field holds a NUL character: no stored id or
    text has one, and PostgreSQL refuses it in a query (the call ended UNKNOWN)."""
    found = nul_fields(request)
    if found:
        invalid_argument(context, f"{found[0]}: contains a NUL character (U+0000)")


def page_size(requested: int, limit: int) -> int:
    """The items of one page: what the caller asked for, at most the service's ``limit`` (0:
    the limit)."""
    return min(requested or limit, limit)


def encode_token(recorded_at: dt.datetime, key: str) -> str:
    raw = json.dumps([recorded_at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> tuple[dt.datetime, str] | None:
    """The position a token names; None for the first page (empty token). A token the service
    did not give is a ``ValueError`` naming the field (the servicer answers INVALID_ARGUMENT)."""
    if not token:
        return None
    try:
        recorded, key = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = dt.datetime.fromisoformat(recorded), str(key)
    except (ValueError, TypeError) as error:
        raise ValueError("page_token: not a token this service gave") from error
    if "\x00" in position[1]:  # no stored key has one (and PostgreSQL would refuse it)
        raise ValueError("page_token: not a token this service gave")
    return position
