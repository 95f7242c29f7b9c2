"""A quarter's or a year's KPI evidence from the processor's MONTH values (pure).

The processor computes HOUR, DAY and MONTH; a quarter or a year is assessed on its months,
each KPI by the rule its catalogue entry states (``Kpi.period_rollup``):

- SUM: numerators and denominators of the months added up, then the value recomputed (a
  ratio: sum(num) / sum(den) * scale; a mean: sum(sums) / sum(n); a count or sum: the sum).
  The sample size is the summed denominator: three small months can make a sufficient quarter.
- LAST: the value of the period's last month (a snapshot at the period's close); while the
  period is still going on, of its newest month.
- MAX: the highest monthly value.
- NONE: a percentile cannot be derived from months: no evidence above MONTH.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import Fn, Kpi, Rollup, add_months, period_start

from pcm_benchmark.assessment import KpiEvidence

MonthValues = Mapping[dt.date, KpiEvidence]
"""One KPI's MONTH evidence by month (first day)."""


def months_of(grain: str, start: dt.date, through: dt.date) -> list[dt.date]:
    """The months of the period of ``grain`` starting on ``start``, up to ``through``'s month
    (an open period is assessed on its months so far)."""
    count = {"MONTH": 1, "QUARTER": 3}.get(grain, 12)
    last = min(add_months(start, count - 1), period_start(through, "MONTH"))
    months = []
    month = start
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def rolled_up(kpi: Kpi, months: MonthValues, last_month: dt.date) -> KpiEvidence | None:
    """The KPI's evidence over the months given; None where there is none (or no rule)."""
    rule = kpi.period_rollup
    if not months or rule is Rollup.NONE:
        return None
    if rule is Rollup.LAST:
        return months.get(last_month)
    if rule is Rollup.MAX:
        valued = [e for e in months.values() if e.value is not None]
        return max(valued, key=lambda e: e.value or 0.0) if valued else None
    numerator = sum(e.numerator for e in months.values())
    newest = months[max(months)]
    if not kpi.is_ratio and kpi.aggregate is not None and kpi.aggregate.fn is not Fn.MEAN:
        return KpiEvidence(numerator, numerator, 1.0, False, newest.catalogue_version)
    denominator = sum(e.denominator for e in months.values())
    value = numerator / denominator * kpi.scale if denominator else None
    return KpiEvidence(
        value, numerator, denominator, denominator < kpi.min_sample, newest.catalogue_version
    )


def period_evidence(
    catalogues: Catalogues,
    by_month: Mapping[str, Mapping[str, MonthValues]],
    last_month: dt.date,
) -> dict[str, dict[str, KpiEvidence]]:
    """Entity -> KPI code -> the period's evidence, from entity -> code -> month -> evidence
    (a KPI the catalogue no longer has is left out)."""
    found: dict[str, dict[str, KpiEvidence]] = {}
    for entity_id, codes in by_month.items():
        for code, months in codes.items():
            try:
                kpi = catalogues.kpi(code)
            except KeyError:
                continue
            evidence = rolled_up(kpi, months, last_month)
            if evidence is not None:
                found.setdefault(entity_id, {})[code] = evidence
    return found
