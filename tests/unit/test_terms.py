"""KPIs by due date and at period close, from procedure statuses (the term tracker's values).

Within term counts every procedure whose due date fell in the period, open overdue ones
included; snapshots count what was open and overdue at the period's close.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pcm_common.catalogues import Catalogues
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.procedures import StageFact, procedure_status
from pcm_processor.terms import TermTracker, Tracked

D = dt.date
FILED = D(2025, 3, 10)  # a Monday; RENIEC_DNI_DUPLICADO: 7 business days
TODAY = D(2025, 4, 1)
CLOCK = BucketClock("America/Lima")


def tracked(
    catalogues: Catalogues, procedure: str, channel: str, stages: list[tuple[str, dt.date]]
) -> Tracked:
    status = procedure_status(
        [StageFact(stage, FILED, day) for stage, day in stages],
        catalogues.procedure_rules,
        catalogues.calendar,
        "LIMA",
        lambda _: 7,
    )
    return Tracked("RENIEC", procedure, "RENIEC_DNI_DUPLICADO", channel, "LIMA", status)


def cases(catalogues: Catalogues) -> list[Tracked]:
    return [
        # Due 19 March, decided that day: on time.
        tracked(catalogues, "P1", "PRESENCIAL", [("FILED", FILED), ("RESOLVED", D(2025, 3, 19))]),
        # Observed 12, resubmitted 13 (one paused day): due 20 March, decided 24: late.
        tracked(
            catalogues,
            "P2",
            "VIRTUAL",
            [
                ("FILED", FILED),
                ("OBSERVED", D(2025, 3, 12)),
                ("RESUBMITTED", D(2025, 3, 13)),
                ("RESOLVED", D(2025, 3, 24)),
            ],
        ),
        # Never decided: due 19 March, open and overdue ever since: counts against.
        tracked(catalogues, "P3", "VIRTUAL", [("FILED", FILED)]),
        # Waiting on the citizen since 11 March: not due, not overdue.
        tracked(catalogues, "P4", "VIRTUAL", [("FILED", FILED), ("OBSERVED", D(2025, 3, 11))]),
    ]


def values(
    catalogues: Catalogues, basis: str, grain: str, day: dt.date, statuses: list[Tracked]
) -> dict[tuple[str, str, str], Any]:
    tracker = TermTracker(catalogues, CLOCK, store=None, database="db")  # type: ignore[arg-type]
    key = (grain, "RENIEC", CLOCK.period_of(day, grain))
    rows = tracker.values(basis, [key], {"RENIEC": statuses}, {"RENIEC": 7}, TODAY)
    return {(row.kpi_code, row.channel, row.service_id): row for row, _ in rows}


def test_within_term_counts_what_fell_due_open_cases_against(catalogues: Catalogues) -> None:
    statuses = cases(catalogues)
    day19 = values(catalogues, "due_date", "DAY", D(2025, 3, 19), statuses)
    # P1 on time, P3 open and overdue: 1 of 2.
    assert day19[("PROCEDURES_WITHIN_TERM_PCT", "", "")].value == 50.0
    assert day19[("PROCEDURES_WITHIN_TERM_PCT", "PRESENCIAL", "")].value == 100.0
    day20 = values(catalogues, "due_date", "DAY", D(2025, 3, 20), statuses)
    assert day20[("PROCEDURES_WITHIN_TERM_PCT", "", "")].value == 0.0  # P2 decided late
    march = values(catalogues, "due_date", "MONTH", D(2025, 3, 1), statuses)
    total = march[("PROCEDURES_WITHIN_TERM_PCT", "", "")]
    assert (total.numerator, total.denominator) == (1.0, 3.0)  # P4 waits: not due
    assert total.insufficient_sample  # 3 < 10 (kpis.yaml min_sample)
    assert march[("PROCEDURES_WITHIN_TERM_PCT", "VIRTUAL", "")].value == 0.0


def test_a_case_not_yet_due_does_not_count_yet(catalogues: Catalogues) -> None:
    open_case = tracked(catalogues, "P5", "PRESENCIAL", [("FILED", FILED)])  # due 19 March
    before_due = TermTracker(catalogues, CLOCK, None, "db")  # type: ignore[arg-type]
    key = ("DAY", "RENIEC", CLOCK.period_of(D(2025, 3, 19), "DAY"))
    rows = before_due.values("due_date", [key], {"RENIEC": [open_case]}, {}, D(2025, 3, 19))
    (row,) = [r for r, _ in rows if r.channel == "" and r.service_id == ""]
    assert math.isnan(row.value) and row.insufficient_sample  # nothing fell due yet
    rows = before_due.values("due_date", [key], {"RENIEC": [open_case]}, {}, D(2025, 3, 20))
    (row,) = [r for r, _ in rows if r.channel == "" and r.service_id == ""]
    assert (row.value, row.denominator) == (0.0, 1.0)  # the next day it counts against


def test_snapshots_at_the_close_of_a_period(catalogues: Catalogues) -> None:
    statuses = cases(catalogues)
    close19 = values(catalogues, "period_close", "DAY", D(2025, 3, 19), statuses)
    # Open at the end of 19 March: P2, P3, P4. Overdue: P3 only (P2 due 20, P4 waits).
    assert close19[("PROCEDURES_OPEN_OVERDUE", "", "")].value == 1.0
    age = close19[("PROCEDURES_BACKLOG_MEAN_AGE_DAYS", "", "")]
    assert (age.value, age.denominator) == (7.0, 3.0)  # received 10, 7 business days to 19
    close_march = values(catalogues, "period_close", "MONTH", D(2025, 3, 1), statuses)
    assert close_march[("PROCEDURES_OPEN_OVERDUE", "", "")].value == 1.0  # P3 on 31 March
    assert close_march[("PROCEDURES_OPEN_OVERDUE", "VIRTUAL", "")].value == 1.0
