"""An entity's assessment against the PCM quality standards (pure: no I/O).

For one entity, one period and one standard of ``catalogues/standards.yaml``, every criterion
gets one of five outcomes, never silently "not met":

- ``MET`` / ``NOT_MET``: the KPI or reported value is there, usable, and holds or not;
- ``NO_EVIDENCE``: no KPI value for the period, or no reported value valid at the period's end
  (never reported, reported for a period not yet covering it, expired, or rejected by the
  oversight body);
- ``INSUFFICIENT_SAMPLE``: the KPI value rests on fewer observations than the catalogue's
  ``min_sample`` (it is shown, never counted as met);
- ``NOT_APPLICABLE``: the criterion cannot apply to the entity (a procedure KPI for an entity
  without TUPA procedures, an attention KPI for one without attention services).

The level is cumulative: a level is reached when every applicable criterion of it and of every
lower level is met, and at least one criterion up to it applied. The score (0-100) is the share of
the standard's applicable criteria that are met, over all levels: two entities on one level are
told apart by how far they got towards the next. What is missing for the next level is listed
criterion by criterion with the value needed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Criterion, ServiceKind, Standard

NONE = "NONE"
"""The level of an entity that reached no level of a standard."""


class Outcome(StrEnum):
    MET = "MET"
    NOT_MET = "NOT_MET"
    NO_EVIDENCE = "NO_EVIDENCE"
    INSUFFICIENT_SAMPLE = "INSUFFICIENT_SAMPLE"
    NOT_APPLICABLE = "NOT_APPLICABLE"


class Review(StrEnum):
    """The oversight body's verdict on a reported value (the indicators service's status)."""

    REPORTED = "REPORTED"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class KpiEvidence:
    """A KPI's value for the entity and period (all channels, all services)."""

    value: float | None
    numerator: float
    denominator: float
    insufficient_sample: bool
    catalogue_version: str = ""


@dataclass(frozen=True)
class ReportedEvidence:
    """The entity's current reported value of an indicator (not superseded)."""

    value: float
    review: Review
    period_start: dt.date
    """First day of the period the value was reported for (a year still going on counts: an
    entity reports this year's status during the year)."""
    valid_until: dt.date
    """Last day it counts (the indicator's ``valid_months`` after its period's end)."""


@dataclass(frozen=True)
class Evidence:
    """What is known about one entity for one period: KPI values and reported values by code."""

    kpis: Mapping[str, KpiEvidence]
    reported: Mapping[str, ReportedEvidence]


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    level: str
    outcome: Outcome
    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    reason: str = ""
    """Why, for anything but MET (e.g. 'no value reported', 'rejected', 'n=12 < 30')."""
    verified: bool = False
    """A reported value the oversight body verified (a pending one counts, unverified)."""

    @property
    def counts(self) -> bool:
        """Whether the criterion applies to the entity (it is in the score's denominator)."""
        return self.outcome is not Outcome.NOT_APPLICABLE


@dataclass(frozen=True)
class Gap:
    """A criterion still to be met for the next level, and what it needs."""

    criterion_id: str
    level: str
    outcome: Outcome
    needed: str


@dataclass(frozen=True)
class StandardAssessment:
    entity_id: str
    standard: str
    level: str
    """NONE or a level of the catalogue (BASICO, INTERMEDIO, AVANZADO)."""
    score: float
    """0-100: share of the applicable criteria that are met (0 when none applies)."""
    criteria: tuple[CriterionResult, ...]
    gaps: tuple[Gap, ...]
    """What is missing for the next level (empty at the top level)."""
    next_level: str | None
    catalogue_version: str
    """The standards catalogue's version that produced it (results are kept per version)."""

    @property
    def applicable(self) -> bool:
        """Whether any criterion of the standard applies to the entity."""
        return any(r.counts for r in self.criteria)


def service_kinds(catalogues: Catalogues, entity_id: str) -> frozenset[ServiceKind]:
    return frozenset(s.kind for s in catalogues.services_for(entity_id))


def applicable(criterion: Criterion, kinds: frozenset[ServiceKind], catalogues: Catalogues) -> bool:
    """A KPI criterion applies when the entity offers services of the kind its KPI is about."""
    if criterion.kpi is None:
        return True
    source = catalogues.kpi(criterion.kpi).source
    needs = {"attention": ServiceKind.ATENCION, "procedure_stage": ServiceKind.TRAMITE}.get(source)
    return needs is None or needs in kinds


def judge(
    criterion: Criterion, level: str, evidence: Evidence, period_end: dt.date, applies: bool
) -> CriterionResult:
    """One criterion's outcome for the entity and period."""
    if not applies:
        return CriterionResult(
            criterion, level, Outcome.NOT_APPLICABLE, reason="the entity offers no such service"
        )
    if criterion.kpi is not None:
        return _judge_kpi(criterion, level, evidence.kpis.get(criterion.kpi))
    return _judge_reported(criterion, level, evidence.reported.get(criterion.measure), period_end)


def _judge_kpi(criterion: Criterion, level: str, kpi: KpiEvidence | None) -> CriterionResult:
    if kpi is None or kpi.value is None:
        return CriterionResult(criterion, level, Outcome.NO_EVIDENCE, reason="no KPI value")
    outcome = Outcome.MET if criterion.holds(kpi.value) else Outcome.NOT_MET
    reason = ""
    if kpi.insufficient_sample:
        outcome = Outcome.INSUFFICIENT_SAMPLE
        reason = f"sample {kpi.denominator:g} below the KPI's minimum"
    return CriterionResult(
        criterion, level, outcome, kpi.value, kpi.numerator, kpi.denominator, reason
    )


def _judge_reported(
    criterion: Criterion, level: str, reported: ReportedEvidence | None, period_end: dt.date
) -> CriterionResult:
    if reported is None:
        return CriterionResult(criterion, level, Outcome.NO_EVIDENCE, reason="never reported")
    if reported.review is Review.REJECTED:
        reason = "the reported value was rejected"
        return CriterionResult(criterion, level, Outcome.NO_EVIDENCE, reported.value, reason=reason)
    if reported.period_start > period_end:
        reason = f"reported for a later period (from {reported.period_start})"
        return CriterionResult(criterion, level, Outcome.NO_EVIDENCE, reported.value, reason=reason)
    if reported.valid_until < period_end:
        reason = f"expired on {reported.valid_until}"
        return CriterionResult(criterion, level, Outcome.NO_EVIDENCE, reported.value, reason=reason)
    outcome = Outcome.MET if criterion.holds(reported.value) else Outcome.NOT_MET
    verified = reported.review is Review.VERIFIED
    return CriterionResult(criterion, level, outcome, reported.value, verified=verified)


def assess(
    entity_id: str,
    standard: Standard,
    evidence: Evidence,
    period_end: dt.date,
    catalogues: Catalogues,
    kinds: frozenset[ServiceKind] | None = None,
) -> StandardAssessment:
    """The level, score, per-criterion outcomes and gaps of one entity on one standard
    (``kinds``: the kinds of service it offers, when the caller already knows them)."""
    if kinds is None:
        kinds = service_kinds(catalogues, entity_id)
    results = tuple(
        judge(criterion, level, evidence, period_end, applicable(criterion, kinds, catalogues))
        for level, criteria in standard.levels.items()
        for criterion in criteria
    )
    reached = _level(standard, results)
    applying = [r for r in results if r.counts]
    met = sum(r.outcome is Outcome.MET for r in applying)
    score = 100.0 * met / len(applying) if applying else 0.0
    levels = list(standard.levels)
    ladder = [NONE, *levels]
    following = ladder.index(reached) + 1
    next_level = ladder[following] if following < len(ladder) else None
    return StandardAssessment(
        entity_id,
        standard.code,
        reached,
        score,
        results,
        _gaps(results, levels, next_level),
        next_level,
        catalogues.versions["standards"],
    )


def _level(standard: Standard, results: Sequence[CriterionResult]) -> str:
    reached = NONE
    applied = False
    for level in standard.levels:
        own = [r for r in results if r.level == level and r.counts]
        if any(r.outcome is not Outcome.MET for r in own):
            break
        applied = applied or bool(own)
        if applied:
            reached = level
    return reached


def _gaps(
    results: Sequence[CriterionResult], levels: Sequence[str], next_level: str | None
) -> tuple[Gap, ...]:
    if next_level is None:
        return ()
    upto = set(levels[: levels.index(next_level) + 1])
    return tuple(
        Gap(r.criterion.id, r.level, r.outcome, _needed(r))
        for r in results
        if r.level in upto and r.counts and r.outcome is not Outcome.MET
    )


def _needed(result: CriterionResult) -> str:
    criterion = result.criterion
    target = f"{criterion.measure} {criterion.op.value} {criterion.threshold:g}"
    if result.outcome is Outcome.NOT_MET:
        return f"{target} (now {result.value:g})"
    if result.outcome is Outcome.INSUFFICIENT_SAMPLE:
        return f"{target} on a sufficient sample ({result.reason})"
    action = "report" if criterion.indicator is not None else "KPI data for"
    return f"{target}: {action} {criterion.measure} ({result.reason})"
