"""The faust consumer never commits past what the processor released."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP
from intervaltree import IntervalTree
from pcm_processor.adapters.faust_consumer import (
    REVIEWED_DRAIN_SHA256,
    GuardedConsumer,
    OffsetLedger,
    drain_source_digest,
)

TP0 = TP("pcm.attention.v1", 0)


def consumer_with_acks(acked: list[int], committed: int | None, ledger: OffsetLedger) -> object:
    """A GuardedConsumer with just the state faust's offset computation reads."""
    consumer = object.__new__(GuardedConsumer)
    consumer.app = SimpleNamespace(offset_ledger=ledger)  # type: ignore[attr-defined]
    consumer._acked = defaultdict(list, {TP0: list(acked)})  # type: ignore[attr-defined]
    consumer._acked_index = defaultdict(set, {TP0: set(acked)})  # type: ignore[attr-defined]
    consumer._gap = defaultdict(IntervalTree)  # type: ignore[attr-defined]
    consumer._committed_offset = defaultdict(lambda: None, {TP0: committed})  # type: ignore[attr-defined]
    return consumer


def test_ledger_keeps_the_highest_release_until_reassignment() -> None:
    ledger = OffsetLedger()
    assert ledger.released(TP0) is None
    ledger.release(TP0, 100)
    ledger.release(TP0, 90)  # never moves back
    assert ledger.released(TP0) == 100
    ledger.reset({TP0})
    assert ledger.released(TP0) is None


def test_nothing_is_committed_before_the_processor_released_something() -> None:
    consumer = consumer_with_acks([10, 11], committed=10, ledger=OffsetLedger())
    assert GuardedConsumer._new_offset(consumer, TP0) is None
    assert consumer._acked[TP0] == [10, 11]  # type: ignore[attr-defined]


def test_messages_faust_skips_and_acks_cannot_be_committed_before_they_are_processed() -> None:
    """Faust acks 13..15 (stale, skipped) while the processor has only finished 10..12."""
    ledger = OffsetLedger()
    ledger.release(TP0, 13)
    consumer = consumer_with_acks([10, 11, 12, 13, 14, 15], committed=9, ledger=ledger)
    assert GuardedConsumer._new_offset(consumer, TP0) == 13  # faust alone would say 16
    assert consumer._acked[TP0] == [13, 14, 15]  # type: ignore[attr-defined]  # kept
    consumer._committed_offset[TP0] = 13  # type: ignore[attr-defined]
    ledger.release(TP0, 16)
    assert GuardedConsumer._new_offset(consumer, TP0) == 16


def test_acks_waiting_past_the_mark_are_left_as_they_are() -> None:
    """Under load the mark moves only at each recomputation; the acks past it stay, in order."""
    ledger = OffsetLedger()
    ledger.release(TP0, 20)
    consumer = consumer_with_acks([20, 21, 22], committed=17, ledger=ledger)
    assert GuardedConsumer._new_offset(consumer, TP0) is None
    assert consumer._acked[TP0] == [20, 21, 22]  # type: ignore[attr-defined]
    consumer._acked[TP0].extend([18, 19])  # type: ignore[attr-defined]  # acked late
    assert GuardedConsumer._new_offset(consumer, TP0) == 20
    assert consumer._acked[TP0] == [20, 21, 22]  # type: ignore[attr-defined]


def test_the_replaced_drain_is_the_reviewed_one() -> None:
    """Upgrading faust changes this digest: review the new drain before re-pinning it."""
    assert drain_source_digest() == REVIEWED_DRAIN_SHA256
