"""Every entity on every standard: ranks within peer groups and nationally, ties, OVERALL."""

from __future__ import annotations

import copy
import datetime as dt

from pcm_benchmark.assessment import Evidence, KpiEvidence, Outcome
from pcm_benchmark.national import OVERALL, benchmark
from pcm_benchmark.ranking import Standing
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import ServiceKind

PERIOD_END = dt.date(2026, 10, 31)
HIGH_DEMAND = "ORGANISMO_NACIONAL_ALTA_DEMANDA"  # nine entities in the catalogue


def punctual(within: float, abandoned: float, time_satisfied: float) -> Evidence:
    def kpi(value: float) -> KpiEvidence:
        return KpiEvidence(value, value * 10, 1_000, False)

    return Evidence(
        {
            "SERVED_WITHIN_TARGET_PCT": kpi(within),
            "ABANDONMENT_PCT": kpi(abandoned),
            "SATISFACTION_PCT_TIEMPO": kpi(time_satisfied),
        },
        {},
    )


def test_ranks_within_the_peer_group_and_nationally_with_ties(catalogues: Catalogues) -> None:
    evidence = {
        "RENIEC": punctual(95, 4, 80),  # AVANZADO, 100
        "SUNARP": punctual(85, 4, 50),  # INTERMEDIO, 66.7
        "SUNAT": punctual(85, 4, 50),  # the same: a tie
        "MUNI-LIMA": punctual(99, 1, 90),  # another peer group, AVANZADO
    }
    results = {(r.standard, r.entity_id): r for r in benchmark(catalogues, evidence, PERIOD_END)}
    peers = sum(e.peer_group == HIGH_DEMAND for e in catalogues.entities)
    everyone = len(catalogues.entities)
    reniec, sunarp, sunat = (results[("PUNTUALIDAD", e)] for e in ("RENIEC", "SUNARP", "SUNAT"))
    assert (reniec.level, reniec.in_peer_group.rank) == ("AVANZADO", 1)
    assert (
        sunarp.in_peer_group
        == sunat.in_peer_group
        == Standing(2, peers, sunat.in_peer_group.percentile)
    )
    # The six others have no evidence: NONE, tied behind, and the next rank skips the tie.
    assert results[("PUNTUALIDAD", "ONP")].in_peer_group.rank == 4
    # Nationally RENIEC ties with MUNI-LIMA (same level, same score).
    assert reniec.national.rank == results[("PUNTUALIDAD", "MUNI-LIMA")].national.rank == 1
    assert reniec.national.peer_count == everyone
    assert results[("PUNTUALIDAD", "ONP")].outcomes == {Outcome.NO_EVIDENCE: 6}
    overall = results[(OVERALL, "RENIEC")]
    assert overall.level == "NONE"  # it reached nothing on the other standards
    assert overall.in_peer_group.rank == 1 and overall.national.peer_count == everyone
    assert overall.catalogue_version == catalogues.versions["standards"]


def test_an_entity_to_which_a_standard_does_not_apply_is_not_ranked_on_it(
    catalogues: Catalogues,
) -> None:
    without_procedures = copy.copy(catalogues)
    object.__setattr__(
        without_procedures,
        "services",
        tuple(
            s
            for s in catalogues.services
            if not (s.kind is ServiceKind.TRAMITE and s.entity_id in {"RENIEC", "*"})
        ),
    )
    results = {(r.standard, r.entity_id): r for r in benchmark(without_procedures, {}, PERIOD_END)}
    reniec = results[("PROCESOS_TRAMITE", "RENIEC")]
    assert reniec.in_peer_group.rank == 0 and reniec.national.peer_count == 0
    assert reniec.outcomes == {Outcome.NOT_APPLICABLE: 5}
    offering = [
        e
        for e in catalogues.entities
        if any(s.kind is ServiceKind.TRAMITE for s in without_procedures.services_for(e.entity_id))
    ]
    assert 0 < len(offering) < len(catalogues.entities)
    assert results[("PROCESOS_TRAMITE", "SUNARP")].national.peer_count == len(offering)
