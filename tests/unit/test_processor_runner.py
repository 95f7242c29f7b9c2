"""The storing loop's bound on messages held for the next KPI flush (backpressure)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from pcm_processor.app import DomainRunner
from pcm_processor.pipeline import Inbound, Released


class FakePipeline:
    """Holds what it stores until a flush; flushes only when the test allows."""

    def __init__(self) -> None:
        self.held = 0
        self.stored: list[int] = []
        self.flushing = False

    async def process(self, batch: list[Inbound]) -> None:
        self.stored.append(len(batch))
        self.held += len(batch)

    def flush_due(self) -> bool:
        return self.flushing and self.held > 0

    async def flush(self) -> Released:
        self.held = 0
        return Released()

    async def close_periods(self) -> None:
        return None


def messages(count: int, start: int) -> list[Any]:
    return [
        SimpleNamespace(topic="t", partition=0, offset=start + i, key=b"E", value=b"v")
        for i in range(count)
    ]


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def test_storing_waits_while_the_flush_is_behind_by_max_held_messages() -> None:
    pipeline = FakePipeline()
    runner = DomainRunner(
        cast(Any, pipeline), cast(Any, None), lambda token: None, 2, 0.01, max_held=3
    )

    async def scenario() -> None:
        for batch in range(4):
            await runner.submit_messages(messages(2, 2 * batch))
        storing = asyncio.ensure_future(runner.run())
        # Two batches (4 messages >= 3) are held: the third waits, the fourth stays queued.
        await until(lambda: runner._inbox().qsize() == 1, "the third batch to be taken")
        for _ in range(20):
            await asyncio.sleep(0)
        assert pipeline.stored == [2, 2]
        pipeline.flushing = True
        flushing = asyncio.ensure_future(runner.flush_forever(0.005))
        await until(lambda: pipeline.stored == [2, 2, 2, 2], "the rest to be stored")
        storing.cancel()
        flushing.cancel()

    asyncio.run(scenario())
