"""Retry an infrastructure call until it succeeds, with capped exponential backoff.

The processor never drops the batch in hand: while ClickHouse (or Kafka) is unreachable it keeps
retrying the same call, consumes nothing new and commits nothing past it. Cancellation (shutdown)
is a BaseException, so it is not retried and ends the wait immediately.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pcm_common.logging import get_logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from pcm_processor.metrics import PROCESSOR_INSERT_RETRIES

log = get_logger(__name__)
T = TypeVar("T")


def _before_sleep(what: str) -> Callable[[RetryCallState], None]:
    def report(state: RetryCallState) -> None:
        PROCESSOR_INSERT_RETRIES.inc()
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "retrying",
            operation=what,
            attempt=state.attempt_number,
            wait_s=round(wait, 2),
            error=f"{type(error).__name__}: {error}",
        )

    return report


async def retry_forever(what: str, call: Callable[[], Awaitable[T]], max_backoff_s: float) -> T:
    """Await ``call()`` until it returns; every failure is logged, counted and retried."""
    retrying = AsyncRetrying(
        # 0.2 s, 0.4 s, 0.8 s ... up to the cap, plus jitter so replicas do not retry in step.
        wait=wait_exponential(multiplier=0.1, max=max_backoff_s) + wait_random(0, 0.2),
        retry=retry_if_exception_type(Exception),
        before_sleep=_before_sleep(what),
        reraise=True,
    )

    async def attempt() -> T:
        # A coroutine function, so tenacity awaits it (a lambda returning an awaitable would be
        # treated as a plain function and its awaitable returned unawaited).
        return await call()

    result: T = await retrying(attempt)
    return result
