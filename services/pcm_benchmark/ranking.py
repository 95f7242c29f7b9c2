"""Ranks, percentile ranks and peer distributions (pure).

Order: better first by a key tuple compared element by element (for a standard: level, then
score; overall: the mean score over the standards that apply, then the number of levels
reached). Ties: entities with equal keys share the best rank of their group and the next rank
skips (standard competition ranking, 1-2-2-4); they are listed by entity id.

Percentile rank of an entity among n peers: 100 x (peers strictly below + half of the peers tied
with it, itself included) / n. An entity alone in its group is at 50; the best of ten distinct
values at 95, the worst at 5.

Peer distributions (what an entity sees of its peers, anonymised) use the catalogue's nearest
rank percentiles: the value at position ceil(p/100 x n) of the sorted values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pcm_benchmark.assessment import NONE, StandardAssessment

Key = tuple[float, ...]


@dataclass(frozen=True)
class Standing:
    rank: int
    """1 = best; tied entities share a rank (1-2-2-4)."""
    peer_count: int
    percentile: float
    """0-100 percentile rank (mid-rank for ties)."""


def standings(keys: Mapping[str, Key]) -> dict[str, Standing]:
    """Rank and percentile rank of every entity of one group by its key (higher is better)."""
    ordered = sorted(keys.items(), key=lambda item: (_descending(item[1]), item[0]))
    count = len(ordered)
    result: dict[str, Standing] = {}
    position = 0
    while position < count:
        key = ordered[position][1]
        tied = [entity for entity, other in ordered[position:] if other == key]
        below = count - position - len(tied)
        percentile = 100.0 * (below + 0.5 * len(tied)) / count
        for entity in tied:
            result[entity] = Standing(position + 1, count, percentile)
        position += len(tied)
    return result


def _descending(key: Key) -> Key:
    return tuple(-value for value in key)


def standard_key(assessment: StandardAssessment, levels: Sequence[str]) -> Key:
    """A standard's ranking key: the level reached (NONE lowest), then the score."""
    return (float([NONE, *levels].index(assessment.level)), assessment.score)


def overall_key(assessments: Sequence[StandardAssessment], levels: Sequence[str]) -> Key:
    """The overall key: mean score over the applicable standards, then the levels reached."""
    applying = [a for a in assessments if a.applicable]
    if not applying:
        return (0.0, 0.0)
    mean = sum(a.score for a in applying) / len(applying)
    reached = sum(float([NONE, *levels].index(a.level)) for a in applying)
    return (mean, reached)


@dataclass(frozen=True)
class Distribution:
    """What an entity may see of its peers: how many, the nearest-rank percentiles, the mean."""

    count: int
    p10: float
    p25: float
    p50: float
    p75: float
    p90: float
    mean: float


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float:
    position = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[position - 1]


def distribution(values: Sequence[float]) -> Distribution | None:
    """Peer percentiles of a KPI or a score (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    p10, p25, p50, p75, p90 = (nearest_rank(ordered, p) for p in (10, 25, 50, 75, 90))
    return Distribution(len(ordered), p10, p25, p50, p75, p90, sum(ordered) / len(ordered))
