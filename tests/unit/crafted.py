"""Crafted events at the boundaries of KPI rules, shared by the reference and the SQL tests,
and the comparison those tests make."""

from __future__ import annotations

import math
from typing import Any

from pcm.monitoring.v1 import envelope_pb2
from pcm_processor.domain.kpis import KpiRow
from pcm_testkit.events import attention_event, local_time

SERVICE = "RENIEC_DNI_DUPLICADO"  # target wait 20 min
ABANDONMENT_HOUR = local_time(2025, 3, 10, 10)


def abandonment_cases() -> list[envelope_pb2.EventEnvelope]:
    """One ticket per abandonment rule (SHORT_ABANDON_MAX_S = 60 s), all issued 10:00-10:01."""
    e, p, at = attention_event, "PRESENCIAL", ABANDONMENT_HOUR
    return [
        # Abandoned, then served after all: counts once, as served.
        e("RENIEC", "BACK", "TICKET_ABANDONED", SERVICE, p, at, finished=at + 300),
        e("RENIEC", "BACK", "TICKET_SERVED", SERVICE, p, at, at + 600, at + 900),
        # Gave up after 20 minutes: not served.
        e("RENIEC", "GONE", "TICKET_ISSUED", SERVICE, p, at),
        e("RENIEC", "GONE", "TICKET_ABANDONED", SERVICE, p, at, finished=at + 1200),
        # Still waiting: not served.
        e("RENIEC", "WAITING", "TICKET_ISSUED", SERVICE, p, at + 60),
        # Gave up within 59 s: not demand. At exactly 60 s: not served.
        e("RENIEC", "SHORT", "TICKET_ABANDONED", SERVICE, p, at, finished=at + 59),
        e("RENIEC", "AT-60", "TICKET_ABANDONED", SERVICE, p, at, finished=at + 60),
        e("RENIEC", "SERVED", "TICKET_SERVED", SERVICE, p, at, at + 120, at + 400),
    ]


def assert_same(expected: dict[Any, KpiRow], got: dict[Any, KpiRow]) -> None:
    """The same KPI keys, each with the same value, numerator, denominator and sample flag."""
    assert expected.keys() == got.keys()
    for key, want in expected.items():
        have = got[key]
        for a, b in (
            (want.value, have.value),
            (want.numerator, have.numerator),
            (want.denominator, have.denominator),
        ):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (key, want, have)
        assert want.insufficient_sample == have.insufficient_sample
