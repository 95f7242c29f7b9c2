"""Every entity on every standard for one period, ranked within its peer group and nationally
(pure: the evidence comes in, the results go out).

A result per (entity, standard), and one per entity with ``standard = OVERALL``: its key is the
mean score over the standards that apply to it, then the levels reached (``ranking.py``). Ranks
and percentile ranks are computed among the entities to which the standard applies; an entity
to which it does not apply gets rank 0 and is left out of its peers' counts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pcm_common.catalogues import Catalogues

from pcm_benchmark.assessment import (
    NONE,
    Evidence,
    Outcome,
    StandardAssessment,
    assess,
    service_kinds,
)
from pcm_benchmark.ranking import Key, Standing, overall_key, standard_key, standings

OVERALL = "OVERALL"
"""The ``standard`` of an entity's overall result."""
UNRANKED = Standing(0, 0, 0.0)


@dataclass(frozen=True)
class Result:
    entity_id: str
    peer_group: str
    standard: str
    level: str
    """The level reached; for OVERALL, the lowest level among the applicable standards."""
    score: float
    in_peer_group: Standing
    national: Standing
    outcomes: Mapping[Outcome, int]
    """How many criteria had each outcome (all standards, for OVERALL)."""
    assessments: tuple[StandardAssessment, ...]
    """The standard's assessment (one), or every standard's (OVERALL)."""
    catalogue_version: str


def benchmark(
    catalogues: Catalogues, evidence: Mapping[str, Evidence], period_end: dt.date
) -> list[Result]:
    """Results of every catalogue entity (an entity without evidence has NO_EVIDENCE)."""
    empty = Evidence({}, {})
    levels = catalogues.standard_levels
    kinds = {e.entity_id: service_kinds(catalogues, e.entity_id) for e in catalogues.entities}
    by_entity = {
        entity.entity_id: [
            assess(
                entity.entity_id,
                standard,
                evidence.get(entity.entity_id, empty),
                period_end,
                catalogues,
                kinds[entity.entity_id],
            )
            for standard in catalogues.standards
        ]
        for entity in catalogues.entities
    }
    keyed: dict[str, dict[str, tuple[Key, tuple[StandardAssessment, ...]]]] = defaultdict(dict)
    for entity_id, assessments in by_entity.items():
        for assessment in assessments:
            if assessment.applicable:
                keyed[assessment.standard][entity_id] = (
                    standard_key(assessment, levels),
                    (assessment,),
                )
        keyed[OVERALL][entity_id] = (overall_key(assessments, levels), tuple(assessments))
    results: list[Result] = []
    for standard, entries in keyed.items():
        results.extend(_ranked(catalogues, standard, entries))
    for entity_id, assessments in by_entity.items():  # not applicable: shown, never ranked
        results.extend(
            _result(catalogues, entity_id, a.standard, (a,), UNRANKED, UNRANKED)
            for a in assessments
            if not a.applicable
        )
    return sorted(results, key=lambda r: (r.standard, r.entity_id))


def _ranked(
    catalogues: Catalogues,
    standard: str,
    entries: Mapping[str, tuple[Key, tuple[StandardAssessment, ...]]],
) -> list[Result]:
    keys = {entity_id: key for entity_id, (key, _) in entries.items()}
    national = standings(keys)
    groups: dict[str, dict[str, Key]] = defaultdict(dict)
    for entity_id, key in keys.items():
        groups[catalogues.entity(entity_id).peer_group][entity_id] = key
    in_group = {e: s for members in groups.values() for e, s in standings(members).items()}
    return [
        _result(
            catalogues, entity_id, standard, assessments, in_group[entity_id], national[entity_id]
        )
        for entity_id, (_, assessments) in entries.items()
    ]


def _result(
    catalogues: Catalogues,
    entity_id: str,
    standard: str,
    assessments: Sequence[StandardAssessment],
    in_group: Standing,
    national: Standing,
) -> Result:
    applying = [a for a in assessments if a.applicable]
    counted: dict[Outcome, int] = defaultdict(int)
    for assessment in assessments:
        for criterion in assessment.criteria:
            counted[criterion.outcome] += 1
    if standard == OVERALL:
        levels = [NONE, *catalogues.standard_levels]
        level = min((a.level for a in applying), key=levels.index, default=NONE)
        score = sum(a.score for a in applying) / len(applying) if applying else 0.0
    else:
        (only,) = assessments
        level, score = only.level, only.score
    return Result(
        entity_id,
        catalogues.entity(entity_id).peer_group,
        standard,
        level,
        score,
        in_group,
        national,
        dict(counted),
        tuple(assessments),
        catalogues.versions["standards"],
    )
