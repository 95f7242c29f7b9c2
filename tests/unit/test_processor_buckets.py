"""Hour/day/month buckets in local time (America/Lima by default), across day and month ends."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from pcm_processor.domain.buckets import BucketClock

UTC = dt.UTC


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=UTC).timestamp())


def test_late_evening_in_lima_belongs_to_that_local_day_and_month() -> None:
    clock = BucketClock("America/Lima")
    # 2024-03-01 04:30 UTC is 2024-02-29 23:30 in Lima (UTC-5), a leap day.
    buckets = clock.buckets(utc(2024, 3, 1, 4, 30))
    assert buckets.hour_start == utc(2024, 3, 1, 4, 0)
    assert buckets.day_start == utc(2024, 2, 29, 5, 0)
    assert buckets.month_start == utc(2024, 2, 1, 5, 0)
    assert buckets.local_date == dt.date(2024, 2, 29)


def test_local_midnight_opens_the_next_day_and_month() -> None:
    clock = BucketClock("America/Lima")
    buckets = clock.buckets(utc(2024, 3, 1, 5, 0))  # 00:00 on 1 March in Lima
    assert buckets.day_start == utc(2024, 3, 1, 5, 0)
    assert buckets.month_start == utc(2024, 3, 1, 5, 0)
    assert clock.buckets(utc(2024, 3, 1, 4, 59, 59)).month_start == utc(2024, 2, 1, 5, 0)


def test_new_year_in_lima_is_five_hours_after_utc() -> None:
    clock = BucketClock("America/Lima")
    eve = clock.buckets(utc(2025, 1, 1, 3, 0))  # 22:00 on 31 December in Lima
    assert eve.month_start == utc(2024, 12, 1, 5, 0)
    assert eve.local_date == dt.date(2024, 12, 31)
    assert clock.buckets(utc(2025, 1, 1, 5, 0)).month_start == utc(2025, 1, 1, 5, 0)


@pytest.mark.parametrize("zone", ["America/Lima", "Asia/Kolkata", "America/Santiago", "UTC"])
def test_memoised_buckets_equal_a_direct_computation(zone: str) -> None:
    """The 15-minute slot cache holds for half-hour offsets and DST zones too."""
    clock = BucketClock(zone)
    tz = ZoneInfo(zone)
    rng = random.Random(7)
    for _ in range(2_000):
        instant = rng.randrange(utc(2023, 1, 1), utc(2026, 1, 1))
        local = dt.datetime.fromtimestamp(instant, tz)
        hour = local.replace(minute=0, second=0, microsecond=0)
        buckets = clock.buckets(instant)
        assert buckets.hour_start == int(hour.timestamp())
        assert buckets.day_start == int(hour.replace(hour=0).timestamp())
        assert buckets.month_start == int(hour.replace(hour=0, day=1).timestamp())
        assert buckets.local_date == local.date()


def test_start_by_grain() -> None:
    buckets = BucketClock("America/Lima").buckets(utc(2024, 7, 15, 20, 10))
    assert [buckets.start(g) for g in ("HOUR", "DAY", "MONTH")] == [
        utc(2024, 7, 15, 20, 0),
        utc(2024, 7, 15, 5, 0),
        utc(2024, 7, 1, 5, 0),
    ]
    with pytest.raises(ValueError):
        buckets.start("WEEK")
