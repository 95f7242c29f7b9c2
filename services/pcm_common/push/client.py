"""What every push service's client does, written once: authenticated, batched, retrying what
may be retried (README, "For entity developers"):

- a whole call answered UNAVAILABLE or RESOURCE_EXHAUSTED stored nothing, and one that timed
  out may or may not have: both are sent again (a resend of a stored event is a duplicate);
- items refused ``REJECTION_CODE_IN_PROGRESS`` (an earlier call still storing them) are sent
  again after a pause, until the answer says stored or duplicate.

A service's client (``pcm_intake.client``, ``pcm_complaints.client``) adds one method per push
RPC of its stub.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from pcm.monitoring.v1 import common_pb2
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pcm_common import domains

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
E = TypeVar("E", bound=Message)


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() in RETRYABLE


class PushClient:
    stub_type: Callable[[grpc.Channel], Any]
    """The service's generated stub class (set by each service's client)."""

    def __init__(
        self,
        target: str,
        token: str,
        ca_certificate: Path | None = None,
        timeout_s: float = 30,
        attempts: int = 6,
        in_progress_pause_s: float = 1.0,
    ) -> None:
        if ca_certificate is None:
            self.channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(ca_certificate.read_bytes())
            self.channel = grpc.secure_channel(target, credentials)
        self.stub = self.stub_type(self.channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._pause_s = in_progress_pause_s
        self._retrying = retry(
            retry=retry_if_exception(_is_retryable),
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            stop=stop_after_attempt(attempts),
            reraise=True,
        )

    def call(self, method: Any, request: Any) -> Any:
        """One call with the credential, retried while the answer says nothing was stored."""
        return self._retrying(method)(request, metadata=self._metadata, timeout=self._timeout_s)

    def push(
        self, send: Callable[[list[E]], common_pb2.PushResult], events: Sequence[E]
    ) -> common_pb2.PushResult:
        """Send, then send the items still in progress again; indexes refer to ``events``."""
        total = common_pb2.PushResult()
        pending = list(range(len(events)))
        for attempt in range(self._attempts):
            result = send([events[index] for index in pending])
            total.accepted += result.accepted
            total.duplicate_indexes.extend(pending[i] for i in result.duplicate_indexes)
            again = []
            for rejection in result.rejections:
                original = pending[rejection.index]
                last = attempt == self._attempts - 1
                if rejection.code == common_pb2.REJECTION_CODE_IN_PROGRESS and not last:
                    again.append(original)
                    continue
                refused = total.rejections.add()
                refused.CopyFrom(rejection)
                refused.index = original
            if not again:
                break
            pending = sorted(set(again))
            time.sleep(self._pause_s * (attempt + 1))
        total.duplicate_indexes.sort()
        total.rejections.sort(key=lambda rejection: rejection.index)
        return total

    def paged(self, method: Any, request: Callable[[str], Any], items: str) -> Iterator[Any]:
        """Every item of a paged read (``request(page_token)``; the answer's field ``items``
        and ``next_page_token``), fetching the pages as they are consumed."""
        token = ""
        while True:
            page = self.call(method, request(token))
            yield from getattr(page, items)
            token = page.next_page_token
            if not token:
                return

    def close(self) -> None:
        self.channel.close()


PushCall = Callable[[Sequence[Message]], common_pb2.PushResult]


def push_call(client: PushClient, domain: str) -> PushCall:
    """The client's method for the domain's push RPC, named from the domain registry
    (``PushAttentions``: ``push_attentions``)."""
    rpc = domains.domain(domain).push
    if rpc is None:
        raise ValueError(f"{domain} events are not pushed by entities")
    method: PushCall = getattr(client, re.sub(r"(?<=[a-z])(?=[A-Z])", "_", rpc.method).lower())
    return method
