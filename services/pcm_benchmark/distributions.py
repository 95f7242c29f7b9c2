"""Peer distributions of a period (pure): for each standard (and OVERALL) the scores of the
entities it applies to, and for each KPI the entity-level values resting on a sufficient sample,
nationally and per peer group. Only counts and percentiles leave here, never who had what."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pcm_common.catalogues import Catalogues

from pcm_benchmark.assessment import KpiEvidence
from pcm_benchmark.national import Result
from pcm_benchmark.ranking import Distribution, distribution

NATIONAL = ""
"""The ``peer_group`` of a national distribution."""


@dataclass(frozen=True)
class PeerDistribution:
    peer_group: str
    measure_kind: str
    """``standard`` (scores; OVERALL included) or ``kpi`` (entity-level values)."""
    measure: str
    values: Distribution


def peer_distributions(
    catalogues: Catalogues,
    results: Sequence[Result],
    kpis: Mapping[str, Mapping[str, KpiEvidence]],
) -> list[PeerDistribution]:
    grouped: dict[tuple[str, str, str], list[float]] = defaultdict(list)

    def add(entity_id: str, kind: str, measure: str, value: float) -> None:
        grouped[(NATIONAL, kind, measure)].append(value)
        grouped[(catalogues.entity(entity_id).peer_group, kind, measure)].append(value)

    for result in results:
        if result.national.rank:  # ranked: the standard applies to the entity
            add(result.entity_id, "standard", result.standard, result.score)
    known = {e.entity_id for e in catalogues.entities}
    for entity_id, entity_kpis in kpis.items():
        if entity_id not in known:
            continue  # an entity no longer in the catalogue
        for code, kpi in entity_kpis.items():
            if kpi.value is not None and not kpi.insufficient_sample:
                add(entity_id, "kpi", code, kpi.value)
    found = []
    for (peer_group, kind, measure), measured in sorted(grouped.items()):
        summary = distribution(measured)
        if summary is not None:
            found.append(PeerDistribution(peer_group, kind, measure, summary))
    return found
