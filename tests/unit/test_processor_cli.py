"""The processor's start-up tuning of Python's cyclic garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pcm_processor.cli import tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_young_threshold_is_raised_and_start_up_objects_frozen(restored_gc: None) -> None:
    _, middle, oldest = gc.get_threshold()
    tune_garbage_collector(50_000)
    assert gc.get_threshold() == (50_000, middle, oldest)
    assert gc.get_freeze_count() > 0


def test_zero_keeps_the_defaults(restored_gc: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
