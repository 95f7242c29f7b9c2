"""The per-entity business figures (pcm_benchmark.entity_watch), pure part: which hour's p90 and
which target, satisfaction windows summed, last activity, plans flagged; and how a pass replaces
the exported series."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest
from pcm_benchmark.entity_watch import (
    Clock,
    DayRow,
    OpenPlan,
    WaitRow,
    clock,
    merge_activity,
    newest_values,
    plan_counts,
    replace_series,
    satisfaction_figures,
    service_wait_targets,
    wait_figures,
)
from pcm_benchmark.plans import Stage
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import WaitTarget
from prometheus_client import CollectorRegistry, Gauge

LIMA = ZoneInfo("America/Lima")
NOW = dt.datetime(2026, 10, 20, 10, 20, tzinfo=LIMA)
ENTITIES = frozenset({"RENIEC", "SUNARP", "ONP"})


def ts(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=LIMA).timestamp())


AT = clock(NOW, "America/Lima")


# --- the windows -------------------------------------------------------------------------------


def test_the_windows_are_local_periods() -> None:
    assert clock(NOW, "America/Lima") == Clock(
        hour=ts(2026, 10, 20, 10),
        previous_hour=ts(2026, 10, 20, 9),
        today=dt.date(2026, 10, 20),
        first_day=ts(2026, 9, 23),  # 28 days, today included
        today_start=ts(2026, 10, 20),
        month=ts(2026, 10, 1),
        previous_month=ts(2026, 9, 1),
    )
    # Given in UTC, read in Lima: 04:10 UTC on 1 November is 23:10 on 31 October there.
    late = clock(dt.datetime(2026, 11, 1, 4, 10, tzinfo=dt.UTC), "America/Lima")
    assert (late.hour, late.previous_hour) == (ts(2026, 10, 31, 23), ts(2026, 10, 31, 22))
    assert (late.today, late.month) == (dt.date(2026, 10, 31), ts(2026, 10, 1))
    # Just after midnight on the 1st: the hour before is last month's.
    first = clock(dt.datetime(2026, 11, 1, 0, 5, tzinfo=LIMA), "America/Lima")
    assert first.previous_hour == ts(2026, 10, 31, 23)
    assert (first.month, first.previous_month) == (ts(2026, 11, 1), ts(2026, 10, 1))


# --- waiting time ------------------------------------------------------------------------------


def test_the_target_is_the_most_lenient_on_the_services_channels(catalogues: Catalogues) -> None:
    targets = service_wait_targets(catalogues)
    # Offered in person, by phone, online and on mobile units: 10 minutes in person; the phone's
    # 60 s (wait_targets.csv) is stricter and does not lower the all-channels target.
    assert targets["ORIENTACION"] == 600
    assert targets["RENIEC_DNI_DUPLICADO"] == 1200
    # A service with no waiting target on any of its channels has no waiting alert.
    untimed = [
        s.model_copy(update={"target_wait_minutes": None})
        if s.service_id == "MESA_DE_PARTES"  # in person and online: no wait_targets.csv rule
        else s
        for s in catalogues.services
    ]
    assert "MESA_DE_PARTES" not in service_wait_targets(
        dataclasses.replace(catalogues, services=tuple(untimed))
    )
    # A more lenient rule on one of the service's channels raises it: a p90 over the service's
    # 10 minutes may be the phone line within its 15.
    lenient = WaitTarget(
        service_id="ORIENTACION", channel="TELEFONICO", target_wait_seconds=900, source="test"
    )
    edited = dataclasses.replace(catalogues, wait_targets=(*catalogues.wait_targets, lenient))
    assert service_wait_targets(edited)["ORIENTACION"] == 900


TARGETS = {"S1": 600.0, "S2": 900.0}


def wait(entity: str, service: str, hour: int, p90: float, served: float) -> WaitRow:
    return WaitRow(entity, service, hour, p90, served)


def test_the_hour_in_progress_once_its_sample_suffices_else_the_hour_before() -> None:
    rows = [
        # Enough tickets this hour: this hour's p90.
        wait("RENIEC", "S1", AT.hour, 700, 45),
        wait("RENIEC", "S1", AT.previous_hour, 500, 80),
        # 10:20 with 4 tickets served: the complete hour before stands in.
        wait("SUNARP", "S1", AT.hour, 2000, 4),
        wait("SUNARP", "S1", AT.previous_hour, 550, 60),
        # A small office, never 30 tickets an hour: the newer hour.
        wait("ONP", "S1", AT.hour, 800, 6),
        wait("ONP", "S1", AT.previous_hour, 300, 9),
        # Nothing served yet this hour: the hour before.
        wait("RENIEC", "S2", AT.previous_hour, 1000, 31),
    ]
    p90, target = wait_figures(rows, AT, TARGETS, 30, ENTITIES)
    assert p90 == {
        ("RENIEC", "S1"): 700,
        ("SUNARP", "S1"): 550,
        ("ONP", "S1"): 800,
        ("RENIEC", "S2"): 1000,
    }
    assert target == {
        ("RENIEC", "S1"): 600,
        ("SUNARP", "S1"): 600,
        ("ONP", "S1"): 600,
        ("RENIEC", "S2"): 900,
    }


def test_only_current_known_numbers_are_exported() -> None:
    rows = [
        wait("RENIEC", "S1", AT.previous_hour - 3600, 900, 50),  # two hours ago: gone
        wait("SUNARP", "S1", AT.hour, math.nan, 0),  # no value
        wait("MUNI-X", "S1", AT.hour, 900, 50),  # not in the catalogue
        wait("ONP", "S9", AT.hour, 900, 50),  # a service without a target
    ]
    assert wait_figures(rows, AT, TARGETS, 30, ENTITIES) == ({}, {})


# --- satisfaction ------------------------------------------------------------------------------


def day(entity: str, age: int, satisfied: float, answers: float) -> DayRow:
    return DayRow(entity, AT.today - dt.timedelta(days=age), satisfied, answers)


def test_satisfaction_sums_the_days_of_each_window() -> None:
    rows = [
        day("RENIEC", 0, 9, 10),  # 90 % on 10 answers
        day("RENIEC", 6, 6, 30),  # 20 % on 30: the window's oldest day
        day("RENIEC", 7, 80, 100),  # only in 28d
        day("RENIEC", 27, 20, 25),  # the 28-day window's oldest day
        day("RENIEC", 28, 0, 500),  # outside both
        day("RENIEC", -1, 0, 500),  # a future day: none expected, none counted
    ]
    pct, answers = satisfaction_figures(rows, AT.today, ENTITIES)
    # 15 of 40, not the 55 % mean of 90 % and 20 %.
    assert pct[("RENIEC", "7d")] == pytest.approx(37.5)
    assert pct[("RENIEC", "28d")] == pytest.approx(100 * 115 / 165)
    assert answers == {("RENIEC", "7d"): 40, ("RENIEC", "28d"): 165}


def test_an_entity_without_answers_this_week_has_no_weekly_percentage() -> None:
    rows = [day("SUNARP", 10, 40, 50), day("MUNI-X", 0, 1, 1), day("ONP", 1, 0, 0)]
    pct, answers = satisfaction_figures(rows, AT.today, ENTITIES)
    assert pct == {("SUNARP", "28d"): 80}
    assert answers == {
        ("SUNARP", "7d"): 0,
        ("SUNARP", "28d"): 50,
        ("ONP", "7d"): 0,
        ("ONP", "28d"): 0,
    }


# --- last activity -----------------------------------------------------------------------------


def test_last_activity_only_moves_forward() -> None:
    known = {"RENIEC": 1000.0, "ONP": 500.0}
    merged = merge_activity(known, [("RENIEC", 900), ("SUNARP", 1200), ("ONP", 0), ("ONP", 700)])
    assert merged == {"RENIEC": 1000, "SUNARP": 1200, "ONP": 700}
    assert known == {"RENIEC": 1000.0, "ONP": 500.0}  # not changed in place


# --- improvement plans -------------------------------------------------------------------------


def test_the_newest_month_with_a_number_is_the_plans_value() -> None:
    september, october = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    rows = [
        ("RENIEC", "K", september, 50.0),
        ("RENIEC", "K", october, 55.0),
        ("SUNARP", "K", october, math.nan),  # nothing to divide by yet this month
        ("SUNARP", "K", september, 70.0),
    ]
    assert newest_values(rows) == {("RENIEC", "K"): 55, ("SUNARP", "K"): 70}


def plan(entity: str, registered: dt.date, deadline: dt.date, stage: Stage = Stage.DO) -> OpenPlan:
    return OpenPlan(entity, "K", 50.0, 90.0, registered, deadline, stage)


def test_open_plans_are_counted_per_entity_by_flag() -> None:
    plans = [
        # Registered in January, due at the end of the year, 5 of 40 points done by 20 October
        # (12.5 % against ~80 % expected): off track.
        plan("RENIEC", dt.date(2026, 1, 10), dt.date(2026, 12, 31)),
        # Past its deadline, target not reached: overdue (and off track).
        plan("RENIEC", dt.date(2026, 1, 10), dt.date(2026, 9, 30), Stage.ACT),
        # Registered this month: on track.
        plan("SUNARP", dt.date(2026, 10, 1), dt.date(2027, 10, 1)),
        # No KPI value: no flag (as the service answers it).
        plan("ONP", dt.date(2026, 1, 10), dt.date(2026, 9, 30)),
        plan("MUNI-X", dt.date(2026, 1, 10), dt.date(2026, 9, 30)),  # not in the catalogue
    ]
    latest = {("RENIEC", "K"): 55.0, ("SUNARP", "K"): 50.0}
    off_track, overdue = plan_counts(plans, latest, AT.today, ENTITIES)
    assert off_track == {"RENIEC": 2, "SUNARP": 0, "ONP": 0}
    assert overdue == {"RENIEC": 1, "SUNARP": 0, "ONP": 0}
    # The target reached: neither flag, even past the deadline.
    done = {("RENIEC", "K"): 95.0}
    assert plan_counts(plans[:2], done, AT.today, ENTITIES) == ({"RENIEC": 0}, {"RENIEC": 0})


def test_the_tolerance_is_the_services() -> None:
    # 30 of 40 points (75 %) on 20 October against ~80 % expected: within 10 points, not 2.
    plans = [plan("RENIEC", dt.date(2026, 1, 10), dt.date(2026, 12, 31))]
    latest = {("RENIEC", "K"): 80.0}
    assert plan_counts(plans, latest, AT.today, ENTITIES)[0] == {"RENIEC": 0}
    assert plan_counts(plans, latest, AT.today, ENTITIES, 2.0)[0] == {"RENIEC": 1}


# --- exporting ---------------------------------------------------------------------------------


def test_a_pass_replaces_the_series_without_dropping_those_that_stay() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("t_wait", "test", ["entity", "service"], registry=registry)
    replace_series(gauge, ("entity", "service"), [(("RENIEC", "S1"), 700), (("ONP", "S1"), 300)])
    replace_series(gauge, ("entity", "service"), [(("RENIEC", "S1"), 650), (("ONP", "S2"), 1)])
    assert registry.get_sample_value("t_wait", {"entity": "RENIEC", "service": "S1"}) == 650
    assert registry.get_sample_value("t_wait", {"entity": "ONP", "service": "S2"}) == 1
    assert registry.get_sample_value("t_wait", {"entity": "ONP", "service": "S1"}) is None
    replace_series(gauge, ("entity", "service"), [])
    assert [s for m in registry.collect() for s in m.samples] == []
