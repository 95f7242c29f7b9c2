"""Wait for a condition, never for a fixed time.

A fixed sleep is either too short on a loaded machine (a flaky test) or too long everywhere (a
slow one). Polling what the test actually waits for, with a deadline, is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout_s: float,
    message: str | Callable[[], str],
    interval_s: float = 0.2,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    ``ignore``: exceptions meaning "not yet" (e.g. ``OSError`` while a server starts). After
    ``timeout_s`` an AssertionError carries ``message`` (a callable is evaluated only then, so it
    may read a log tail).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = condition()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout_s:g} s)")
        time.sleep(interval_s)
