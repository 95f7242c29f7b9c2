"""KPI plans from the catalogue and the reference computation, on hand-computed cases."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import pytest
from pcm.monitoring.v1 import envelope_pb2
from pcm_common.catalogues import Catalogues
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.kpis import KpiPlan, build_plan, p90
from pcm_processor.domain.reference import reference_kpis
from pcm_processor.domain.registry import ACTIVITY, ATTENTION, PROCEDURE_STAGE, FactDomain
from pcm_testkit.events import attention_event, local_time, procedure_stage_event
from pcm_testkit.kpis import expected_kpis

from tests.unit.crafted import ABANDONMENT_HOUR, abandonment_cases

DAY = local_time(2025, 3, 10)
HOUR9 = local_time(2025, 3, 10, 9)
MARCH = local_time(2025, 3, 1)
SERVICE = "RENIEC_DNI_DUPLICADO"  # target wait 20 min, legal term 7 business days


def rows(
    domain: FactDomain, catalogues: Catalogues, envelopes: Iterable[envelope_pb2.EventEnvelope]
) -> list[tuple[object, ...]]:
    ctx = MappingContext(CatalogueView.of(catalogues), BucketClock("America/Lima"))
    return [domain.map(e, Position(0, i), ctx) for i, e in enumerate(envelopes)]


def t(hour: int, minute: int) -> int:
    return local_time(2025, 3, 10, hour, minute)


def four_tickets() -> list[envelope_pb2.EventEnvelope]:
    """Waits 600 s, 1800 s, 120 s; one ticket abandoned; one preferential; one virtual."""
    e = attention_event
    return [
        e("RENIEC", "T1", "TICKET_ISSUED", SERVICE, "PRESENCIAL", t(9, 0)),
        e("RENIEC", "T1", "TICKET_CALLED", SERVICE, "PRESENCIAL", t(9, 0), t(9, 10)),
        e("RENIEC", "T1", "TICKET_SERVED", SERVICE, "PRESENCIAL", t(9, 0), t(9, 10), t(9, 15)),
        e("RENIEC", "T2", "TICKET_ISSUED", SERVICE, "PRESENCIAL", t(9, 5), preferential=True),
        e(
            "RENIEC",
            "T2",
            "TICKET_SERVED",
            SERVICE,
            "PRESENCIAL",
            t(9, 5),
            t(9, 35),
            t(9, 45),
            preferential=True,
        ),
        e("RENIEC", "T3", "TICKET_SERVED", SERVICE, "VIRTUAL", t(9, 20), t(9, 22), t(9, 30)),
        e("RENIEC", "T4", "TICKET_ISSUED", "ORIENTACION", "PRESENCIAL", t(9, 30)),
        e(
            "RENIEC",
            "T4",
            "TICKET_ABANDONED",
            "ORIENTACION",
            "PRESENCIAL",
            t(9, 30),
            finished=t(9, 50),
        ),
    ]


def values(
    plan: KpiPlan,
    envelopes: list[envelope_pb2.EventEnvelope],
    catalogues: Catalogues,
) -> dict[tuple[str, str, int, str, str], float]:
    """The plan's KPI values of these events, and the activity source's (across domains)."""
    computed = reference_kpis(plan, rows(plan.domain, catalogues, envelopes))
    found = {(k[1], k[2], k[3], k[4], k[5]): row.value for k, row in computed.items()}
    across = expected_kpis(catalogues, {plan.domain.name: envelopes})
    activity = {kpi.kpi.code for kpi in build_plan(ACTIVITY, catalogues).kpis}
    for key, (value, _, _) in across.items():
        if key[1] in activity and value is not None:
            found[(key[1], key[2], key[3], key[4], key[5])] = value
    return found


def test_attention_plan_follows_the_catalogue(catalogues: Catalogues) -> None:
    plan = build_plan(ATTENTION, catalogues)
    assert [p.kpi.code for p in plan.kpis] == [
        "ATTENTIONS",
        "WAIT_MEAN_S",
        "WAIT_P90_S",
        "SERVED_WITHIN_TARGET_PCT",
        "SERVICE_MEAN_S",
        "SERVICE_WITHIN_TARGET_PCT",
        "ABANDONMENT_PCT",
        "PREFERENTIAL_SHARE_PCT",
    ]
    # Digital take-up, channel levels, complaints and responses per attention span domains:
    # the activity source's, which every domain's pipeline recomputes.
    assert [p.kpi.code for p in build_plan(ACTIVITY, catalogues).kpis] == [
        "DIGITAL_TAKEUP_PCT",
        "ACTIVE_CHANNELS",
        "CHANNEL_LEVEL",
        "COMPLAINTS_PER_10K_ATTENTIONS",
        "RESPONSES_PER_1000_ATTENTIONS",
    ]
    assert plan.skipped == ()
    assert plan.grains == ("HOUR", "DAY", "MONTH")
    # A ticket still waiting counts in ABANDONMENT_PCT: every kind of event can change a KPI.
    assert plan.prefilter is None
    without_abandonment = copy.copy(catalogues)
    object.__setattr__(
        without_abandonment,
        "kpis",
        tuple(k for k in catalogues.kpis if k.code != "ABANDONMENT_PCT"),
    )
    # Without it, issued and called events cannot change any catalogue KPI: they mark nothing
    # dirty.
    narrowed = build_plan(ATTENTION, without_abandonment)
    assert narrowed.prefilter == ("kind", ("TICKET_SERVED",))


def test_procedure_plan_leaves_snapshot_kpis_to_others(catalogues: Catalogues) -> None:
    plan = build_plan(PROCEDURE_STAGE, catalogues)
    assert [p.kpi.code for p in plan.kpis] == [
        "PROCEDURES_FILED",
        "PROCEDURES_FINISHED",
        "PROCEDURES_REWORKED_PCT",
    ]
    # Within term counts what fell due, open cases included; snapshots are taken at period
    # close: the term tracker computes them (tests/unit/test_terms.py).
    assert plan.skipped == (
        ("PROCEDURES_WITHIN_TERM_PCT", "computed by the term tracker (due_date)"),
        ("PROCEDURES_OPEN_OVERDUE", "computed by the term tracker (period_close)"),
        ("PROCEDURES_BACKLOG_MEAN_AGE_DAYS", "computed by the term tracker (period_close)"),
    )
    assert plan.grains == ("DAY", "MONTH")


def test_a_typo_in_a_catalogue_filter_stops_the_processor(catalogues: Catalogues) -> None:
    kpi = catalogues.kpi("ATTENTIONS")
    assert kpi.aggregate is not None
    broken = kpi.aggregate.model_copy(update={"where": {"kind": "TICKET_SEVED"}})
    bad = copy.copy(catalogues)
    object.__setattr__(bad, "kpis", (kpi.model_copy(update={"aggregate": broken}),))
    with pytest.raises(ValueError, match="TICKET_SEVED"):
        build_plan(ATTENTION, bad)


def test_four_tickets_give_the_hand_computed_kpis(catalogues: Catalogues) -> None:
    got = values(build_plan(ATTENTION, catalogues), four_tickets(), catalogues)
    everything = {
        code: got[(code, "HOUR", HOUR9, "", "")]
        for code in (
            "ATTENTIONS",
            "WAIT_MEAN_S",
            "WAIT_P90_S",
            "SERVED_WITHIN_TARGET_PCT",
            "SERVICE_MEAN_S",
            "ABANDONMENT_PCT",
        )
    }
    assert everything == {
        "ATTENTIONS": 3.0,
        "WAIT_MEAN_S": 840.0,  # (600 + 1800 + 120) / 3
        "WAIT_P90_S": 1800.0,
        "SERVED_WITHIN_TARGET_PCT": 2 / 3 * 100,  # 1800 s is over the 20 min target
        "SERVICE_MEAN_S": 460.0,  # (300 + 600 + 480) / 3
        "ABANDONMENT_PCT": 25.0,  # 1 of 4 closed tickets
    }
    assert got[("PREFERENTIAL_SHARE_PCT", "DAY", DAY, "", "")] == 1 / 3 * 100
    assert got[("DIGITAL_TAKEUP_PCT", "MONTH", MARCH, "", "")] == 1 / 3 * 100
    assert got[("ACTIVE_CHANNELS", "DAY", DAY, "", "")] == 2.0
    assert got[("CHANNEL_LEVEL", "DAY", DAY, "", "")] == 2.0  # presencial + virtual: intermedio
    # Slices: per channel, per service, per both.
    assert got[("WAIT_MEAN_S", "HOUR", HOUR9, "PRESENCIAL", "")] == 1200.0
    assert got[("ATTENTIONS", "DAY", DAY, "", "ORIENTACION")] == 0.0
    assert got[("ABANDONMENT_PCT", "DAY", DAY, "PRESENCIAL", "ORIENTACION")] == 100.0
    assert ("WAIT_MEAN_S", "DAY", DAY, "", "ORIENTACION") not in got  # no served ticket: no mean
    # Counting channels within one channel says nothing: not kept on channel slices.
    assert ("ACTIVE_CHANNELS", "DAY", DAY, "VIRTUAL", "") not in got
    assert got[("ACTIVE_CHANNELS", "DAY", DAY, "", SERVICE)] == 2.0


def test_duplicates_and_replays_change_no_kpi(catalogues: Catalogues) -> None:
    plan = build_plan(ATTENTION, catalogues)
    events = four_tickets()
    once = values(plan, events, catalogues)
    assert values(plan, events + events[::-1], catalogues) == once
    # The same ticket served twice under another event id is still one attention.
    again = attention_event(
        "RENIEC",
        "T1",
        "TICKET_SERVED",
        SERVICE,
        "PRESENCIAL",
        t(9, 0),
        t(9, 10),
        t(9, 15),
        event_id="T1-served-again",
    )
    assert values(plan, [*events, again], catalogues) == once


def test_procedures_filed_and_reworked(catalogues: Catalogues) -> None:
    filed = local_time(2025, 3, 10, 10)
    p = procedure_stage_event
    events = [
        p("RENIEC", "P1", "FILED", SERVICE, "PRESENCIAL", filed, filed),
        p("RENIEC", "P1", "RESOLVED", SERVICE, "PRESENCIAL", filed, local_time(2025, 3, 19, 9), 2),
        p("RENIEC", "P2", "FILED", SERVICE, "VIRTUAL", filed, filed),
        p("RENIEC", "P2", "OBSERVED", SERVICE, "VIRTUAL", filed, local_time(2025, 3, 12, 9), 2),
        p("RENIEC", "P2", "RESUBMITTED", SERVICE, "VIRTUAL", filed, local_time(2025, 3, 13, 9), 3),
        p("RENIEC", "P2", "RESOLVED", SERVICE, "VIRTUAL", filed, local_time(2025, 3, 24, 9), 4),
    ]
    got = values(build_plan(PROCEDURE_STAGE, catalogues), events, catalogues)
    day19, day24 = local_time(2025, 3, 19), local_time(2025, 3, 24)
    assert got[("PROCEDURES_FILED", "DAY", DAY, "", "")] == 2.0
    assert got[("PROCEDURES_FINISHED", "DAY", DAY, "", "")] == 0.0
    assert got[("PROCEDURES_REWORKED_PCT", "DAY", day19, "", "")] == 0.0
    assert got[("PROCEDURES_REWORKED_PCT", "DAY", day24, "", "")] == 100.0  # observed on the 12th
    assert got[("PROCEDURES_REWORKED_PCT", "MONTH", MARCH, "", "")] == 50.0
    # Within term is by due date, open cases included: the term tracker's (test_terms.py).
    assert not any(key[0] == "PROCEDURES_WITHIN_TERM_PCT" for key in got)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ([5], 5),
        ([3, 1, 2, 4], 4),  # rank ceil(3.6) = 4
        (list(range(1, 11)), 9),  # rank 9 exactly: 90% of the ten values are at most 9
        (list(range(1, 12)), 10),  # rank ceil(9.9) = 10
        (list(range(1, 21)), 18),
        ([], 0),
    ],
)
def test_p90_is_the_nearest_rank_value(sample: list[int], expected: int) -> None:
    """Nearest-rank method (catalogues/kpis.yaml `percentile_method`): 1-based rank
    ceil(0.9 n) of the sorted values, always an observed value."""
    assert p90(sample) == expected


def served_tickets(count: int) -> list[envelope_pb2.EventEnvelope]:
    """``count`` tickets served at 9:00-9:30 (one minute apart), wait 5 min each."""
    return [
        attention_event(
            "RENIEC",
            f"S{n}",
            "TICKET_SERVED",
            SERVICE,
            "PRESENCIAL",
            t(9, n),
            t(9, n + 5),
            t(9, 50),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(("tickets", "insufficient"), [(29, True), (30, False)])
def test_a_value_on_fewer_observations_than_the_minimum_is_flagged(
    catalogues: Catalogues, tickets: int, insufficient: bool
) -> None:
    """WAIT_MEAN_S needs 30 served tickets (kpis.yaml min_sample): 29 is one below."""
    assert catalogues.kpi("WAIT_MEAN_S").min_sample == 30
    plan = build_plan(ATTENTION, catalogues)
    computed = reference_kpis(plan, rows(ATTENTION, catalogues, served_tickets(tickets)))
    hour = computed[("RENIEC", "WAIT_MEAN_S", "HOUR", HOUR9, "", "")]
    assert (hour.value, hour.denominator) == (300.0, float(tickets))
    assert hour.insufficient_sample is insufficient
    # Counts have no sample size: never flagged.
    assert not computed[("RENIEC", "ATTENTIONS", "HOUR", HOUR9, "", "")].insufficient_sample


def test_abandonment_counts_each_issued_ticket_once_by_its_final_state(
    catalogues: Catalogues,
) -> None:
    """Tickets not served ÷ tickets issued: a ticket abandoned then served counts as served,
    one still waiting counts as not served, one given up within SHORT_ABANDON_MAX_S (60 s) is
    not demand; at exactly 60 s it is."""
    assert catalogues.kpi_parameters["SHORT_ABANDON_MAX_S"].value == 60
    computed = reference_kpis(
        build_plan(ATTENTION, catalogues), rows(ATTENTION, catalogues, abandonment_cases())
    )
    hour = computed[("RENIEC", "ABANDONMENT_PCT", "HOUR", ABANDONMENT_HOUR, "", "")]
    # Issued and counted: BACK, GONE, WAITING, AT-60, SERVED (SHORT is not demand).
    # Not served: GONE, WAITING, AT-60.
    assert (hour.numerator, hour.denominator) == (3.0, 5.0)
    assert hour.value == pytest.approx(60.0)


def test_channel_kpis_follow_seed_000_and_what_the_entity_declares(
    catalogues: Catalogues,
) -> None:
    """Phone and itinerant units are not digital take-up; without an in-person channel an
    entity ranks below básico however many channels it has; channels count by type."""
    e, at = attention_event, local_time(2025, 3, 10, 11)
    events = [
        e("RENIEC", "P1", "TICKET_SERVED", SERVICE, "TELEFONICO", at, at + 60, at + 300),
        e("RENIEC", "W1", "TICKET_SERVED", SERVICE, "WEB", at, at + 60, at + 300),
        e("RENIEC", "A1", "TICKET_SERVED", SERVICE, "APP", at, at + 60, at + 300),
        e("RENIEC", "M1", "TICKET_SERVED", SERVICE, "MOVIL", at, at + 60, at + 300),
    ]
    got = values(build_plan(ATTENTION, catalogues), events, catalogues)
    assert got[("DIGITAL_TAKEUP_PCT", "DAY", DAY, "", "")] == 50.0  # web and app of four
    assert got[("ACTIVE_CHANNELS", "DAY", DAY, "", "")] == 3.0  # phone, virtual, itinerant
    assert got[("CHANNEL_LEVEL", "DAY", DAY, "", "")] == 0.0
    with_counter = [
        *events,
        e("RENIEC", "C1", "TICKET_SERVED", SERVICE, "PRESENCIAL", at, at + 60, at + 300),
    ]
    got = values(build_plan(ATTENTION, catalogues), with_counter, catalogues)
    assert got[("CHANNEL_LEVEL", "DAY", DAY, "", "")] == 3.0  # avanzado


def test_wait_targets_per_channel_and_service_time_target(catalogues: Catalogues) -> None:
    """A phone queue is judged against 60 s (wait_targets.csv), a counter against the service's
    20 minutes; service time against target_service_minutes. Each boundary: exactly at target
    is within."""
    service = catalogues.service(SERVICE)
    assert (service.target_wait_minutes, service.target_service_minutes) == (20, 10)
    e, at = attention_event, local_time(2025, 3, 10, 12)
    events = [
        e("RENIEC", "PH1", "TICKET_SERVED", SERVICE, "TELEFONICO", at, at + 60, at + 660),
        e("RENIEC", "PH2", "TICKET_SERVED", SERVICE, "TELEFONICO", at, at + 61, at + 600),
        e("RENIEC", "DK1", "TICKET_SERVED", SERVICE, "PRESENCIAL", at, at + 1200, at + 1800),
        e("RENIEC", "DK2", "TICKET_SERVED", SERVICE, "PRESENCIAL", at, at + 1201, at + 1900),
    ]
    got = values(build_plan(ATTENTION, catalogues), events, catalogues)
    noon = local_time(2025, 3, 10, 12)
    assert got[("SERVED_WITHIN_TARGET_PCT", "HOUR", noon, "TELEFONICO", "")] == 50.0
    assert got[("SERVED_WITHIN_TARGET_PCT", "HOUR", noon, "PRESENCIAL", "")] == 50.0
    # Service times: 600, 539, 600, 699 s against 600 s.
    assert got[("SERVICE_WITHIN_TARGET_PCT", "HOUR", noon, "", "")] == 75.0


def test_digital_take_up_and_channel_levels_span_attentions_and_procedures(
    catalogues: Catalogues,
) -> None:
    """A procedure filed through the digital mesa de partes is digital take-up; an entity with
    no ticket feed still gets a channel level from its procedures."""
    at = local_time(2025, 3, 10, 11)
    served = attention_event(
        "RENIEC", "C1", "TICKET_SERVED", SERVICE, "PRESENCIAL", at, at + 60, at + 300
    )
    filed = procedure_stage_event("RENIEC", "E1", "FILED", SERVICE, "MESA_PARTES_DIGITAL", at, at)
    both = expected_kpis(catalogues, {"attention": [served], "procedure_stage": [filed]})
    assert both[("RENIEC", "DIGITAL_TAKEUP_PCT", "DAY", DAY, "", "")][0] == 50.0
    assert both[("RENIEC", "CHANNEL_LEVEL", "DAY", DAY, "", "")][0] == 2.0  # intermedio
    procedures_only = expected_kpis(catalogues, {"procedure_stage": [filed]})
    # Filed online only, no in-person channel: below básico, but measured.
    assert procedures_only[("RENIEC", "CHANNEL_LEVEL", "DAY", DAY, "", "")][0] == 0.0
    assert procedures_only[("RENIEC", "DIGITAL_TAKEUP_PCT", "DAY", DAY, "", "")][0] == 100.0
