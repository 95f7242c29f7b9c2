"""KPI states held in memory: which periods are dropped first, and which hold facts
(``StoredPeriods``, what lets a new hour skip its build)."""

from __future__ import annotations

from pcm_processor.domain.states import PeriodKey, StateStore, StoredPeriods
from pcm_testkit.events import local_time

MONTH = local_time(2025, 3, 1)
NINE, TEN = local_time(2025, 3, 5, 9), local_time(2025, 3, 5, 10)
DAY = local_time(2025, 3, 5)


def stored() -> StoredPeriods:
    periods = StoredPeriods(("HOUR", "DAY", "MONTH"), limit=2)
    periods.record("RENIEC", MONTH, {"HOUR": [NINE], "DAY": [DAY], "MONTH": [MONTH]})
    return periods


def test_a_period_of_a_scanned_month_without_facts_is_the_only_one_without_facts() -> None:
    periods = stored()
    assert periods.without_facts(PeriodKey("RENIEC", "HOUR", TEN), MONTH)
    assert not periods.without_facts(PeriodKey("RENIEC", "HOUR", NINE), MONTH)
    assert not periods.without_facts(PeriodKey("RENIEC", "DAY", DAY), MONTH)
    # Not scanned: another entity, another month.
    assert not periods.without_facts(PeriodKey("SUNAT", "HOUR", TEN), MONTH)
    april = local_time(2025, 4, 1)
    assert not periods.without_facts(PeriodKey("RENIEC", "HOUR", april), april)


def test_a_stored_batch_sets_its_periods_and_nothing_else() -> None:
    periods = stored()
    periods.add(PeriodKey("RENIEC", "HOUR", TEN), MONTH)
    assert not periods.without_facts(PeriodKey("RENIEC", "HOUR", TEN), MONTH)
    assert periods.without_facts(PeriodKey("RENIEC", "HOUR", local_time(2025, 3, 5, 11)), MONTH)
    assert periods.without_facts(PeriodKey("RENIEC", "DAY", local_time(2025, 3, 6)), MONTH)
    periods.add(PeriodKey("SUNAT", "HOUR", TEN), MONTH)  # not scanned: stays unknown
    assert not periods.scanned("SUNAT", MONTH)


def test_an_empty_month_and_the_oldest_months_beyond_the_limit() -> None:
    periods = stored()
    periods.record("SUNAT", MONTH, {})
    assert periods.without_facts(PeriodKey("SUNAT", "MONTH", MONTH), MONTH)
    periods.record("MINSA", MONTH, {})
    assert not periods.scanned("RENIEC", MONTH)  # forgotten: scanned again when touched
    assert not periods.without_facts(PeriodKey("RENIEC", "HOUR", TEN), MONTH)


def test_dropping_the_states_drops_what_was_scanned() -> None:
    states = StateStore(max_slices=10)
    states.stored.record("RENIEC", MONTH, {})
    states.reset()
    assert not states.stored.scanned("RENIEC", MONTH)


def test_past_hours_are_dropped_before_any_day_or_month() -> None:
    states = StateStore(max_slices=4)
    month = PeriodKey("RENIEC", "MONTH", MONTH)
    day = PeriodKey("RENIEC", "DAY", DAY)
    nine, ten = PeriodKey("RENIEC", "HOUR", NINE), PeriodKey("RENIEC", "HOUR", TEN)
    for key in (month, day, nine, ten):
        states.put(key, {("", ""): [1, 1]})
    states.apply(nine, ("", ""), [1, 1])  # nine touched last: ten is the older hour now
    states.put(PeriodKey("SUNAT", "MONTH", MONTH), {("", ""): [1, 1]})
    assert [key for key, _ in states.evict()] == [ten]
    states.max_slices = 2
    assert [key for key, _ in states.evict()] == [nine, day]
    assert month in states and PeriodKey("SUNAT", "MONTH", MONTH) in states
