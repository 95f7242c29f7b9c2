"""Typed records of the catalogue files (pydantic v2, frozen).

Only rules that one record can check on its own live here; rules that need another file
(does this channel exist? this entity?) are in ``checks.py``, which knows file and line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pcm_common.domains import KPI_SOURCES

from .sources import FieldError

_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_SLUG = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_CRITERION_ID = re.compile(r"[A-Z0-9]+(?:[-_.][A-Z0-9]+)*")

ALL = "*"
"""Wildcard in ``entity_id`` / ``category``: applies to every entity (or category)."""


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _split_pipe(value: object) -> object:
    # CSV cells hold lists as "A|B|C"; YAML already gives a list.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split("|"))
    return value


def _entity_ref(value: str) -> str:
    if value != ALL and not _SLUG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an entity id (UPPER ASCII slug such as GR-CUSCO) or '*'"
        )
    return value


def _code_or_all(value: str) -> str:
    if value != ALL and not _CODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an UPPER_SNAKE ASCII code or '*'")
    return value


Code = Annotated[str, _matching(_CODE, "an UPPER_SNAKE ASCII code (A-Z, 0-9, _)")]
EntityId = Annotated[str, _matching(_SLUG, "an entity id (UPPER ASCII slug such as GR-CUSCO)")]
Slug = Annotated[str, _matching(_SLUG, "an UPPER ASCII slug such as LIMA-CENTRO")]
EntityRef = Annotated[str, AfterValidator(_entity_ref)]
CodeOrAll = Annotated[str, AfterValidator(_code_or_all)]
FieldName = Annotated[str, _matching(_FIELD, "a lower_snake field name")]
Text = Annotated[str, Field(min_length=1)]
CodeList = Annotated[tuple[Code, ...], BeforeValidator(_split_pipe), Field(min_length=1)]


class Record(BaseModel):
    """Base of every catalogue record: immutable, no unknown keys, trimmed strings."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class CatalogueFile(Record):
    """Every YAML catalogue starts with a version the oversight body bumps on each edit."""

    version: Text


# --- channels.yaml --------------------------------------------------------------------------


class ChannelType(StrEnum):
    """The four kinds of channel of seed 000; channel levels are stated in these."""

    PRESENCIAL = "PRESENCIAL"
    TELEFONICO = "TELEFONICO"
    VIRTUAL = "VIRTUAL"
    MOVIL = "MOVIL"


class Channel(Record):
    code: Code
    name: Text
    description: Text
    type: ChannelType
    digital: bool
    """Electronic self-service (web, gob.pe, mesa de partes digital, app, chat, e-mail): what
    digital take-up counts. Phone is assisted, itinerant units are in person."""


class LevelRule(Record):
    """A channel level's condition on the entity's active channel *types*, evaluated
    generically (no level is special in code)."""

    min_channels: int = Field(default=0, ge=0)
    required: tuple[ChannelType, ...] = ()
    any_of: tuple[ChannelType, ...] = ()

    def holds(self, active: frozenset[str]) -> bool:
        return (
            len(active) >= self.min_channels
            and active.issuperset(self.required)
            and (not self.any_of or not active.isdisjoint(self.any_of))
        )


class ChannelLevel(Record):
    code: Code
    name: Text
    rank: int = Field(ge=1)
    description: Text
    rule: LevelRule


class ChannelsFile(CatalogueFile):
    channels: tuple[Channel, ...] = Field(min_length=1)
    levels: tuple[ChannelLevel, ...] = Field(min_length=1)


# --- drivers.yaml ---------------------------------------------------------------------------


class LikertScale(Record):
    min: int = 1
    max: int = 5
    satisfied_min: int
    labels: dict[int, Text]

    @model_validator(mode="after")
    def _consistent(self) -> LikertScale:
        if self.min >= self.max:
            raise FieldError("max", f"must be greater than min ({self.min})")
        if not self.min <= self.satisfied_min <= self.max:
            raise FieldError("satisfied_min", f"must be between {self.min} and {self.max}")
        if sorted(self.labels) != list(range(self.min, self.max + 1)):
            raise FieldError("labels", f"need exactly one label per point {self.min}..{self.max}")
        return self

    def is_valid(self, score: int) -> bool:
        return self.min <= score <= self.max

    def is_satisfied(self, score: int) -> bool:
        """Top-box rule: a valid answer at or above ``satisfied_min``."""
        return self.satisfied_min <= score <= self.max


class Driver(Record):
    code: Code
    name: Text
    description: Text
    question: Text | None = None


class JourneyStage(Record):
    """A stage of the citizen's journey a survey collection is about (SurveyCollection.stage)."""

    code: Code
    name: Text
    description: Text


class DriversFile(CatalogueFile):
    scale: LikertScale
    drivers: tuple[Driver, ...] = Field(min_length=1)
    stages: tuple[JourneyStage, ...] = Field(min_length=1)


# --- kpis.yaml ------------------------------------------------------------------------------


def _kpi_source(value: str) -> str:
    if value not in KPI_SOURCES:
        raise ValueError(f"{value!r} is not a KPI source ({', '.join(KPI_SOURCES)})")
    return value


Domain = Annotated[str, AfterValidator(_kpi_source)]
"""An event domain of ``pcm_common.domains``, or ``activity`` (across domains): a KPI's source."""


class Unit(StrEnum):
    COUNT = "count"
    SECONDS = "seconds"
    PERCENT = "percent"
    RATIO = "ratio"
    LEVEL = "level"
    BUSINESS_DAYS = "business_days"
    SCORE = "score"
    BOOLEAN = "boolean"


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"
    NEUTRAL = "neutral"


class Grain(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"
    QUARTER = "QUARTER"
    YEAR = "YEAR"


class Fn(StrEnum):
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    MEAN = "mean"
    P90 = "p90"
    MAX = "max"
    CHANNEL_LEVEL = "channel_level"
    CHANNEL_TYPES = "channel_types"


_SAMPLED = frozenset({Fn.MEAN, Fn.P90, Fn.MAX})
"""Aggregates computed on a count of observations (their sample size)."""
_ADDITIVE = frozenset({Fn.COUNT, Fn.COUNT_DISTINCT, Fn.SUM})
"""Measures whose monthly numerators add up to the quarter's or year's (each counted id
belongs to one month: the processor dates a ticket, a case's due date or an answer once)."""


class Rollup(StrEnum):
    """How a KPI's QUARTER and YEAR values follow from its MONTH values (the benchmark assesses
    quarters and years from the processor's months)."""

    SUM = "sum"
    """Numerators and denominators added up: counts, sums, ratios of them, means (sum / n)."""
    LAST = "last"
    """The value of the period's last month: a snapshot at the period's close."""
    MAX = "max"
    """The highest monthly value (a level the entity held for a whole month of the period)."""
    NONE = "none"
    """Not derivable from months (a percentile): no evidence at QUARTER or YEAR."""


FilterValue = bool | int | str | tuple[str, ...]


class Measure(Record):
    """One aggregate over events: ``fn(field)`` of the events matching ``where``."""

    fn: Fn
    field: FieldName | None = None
    where: dict[FieldName, FilterValue] = Field(default_factory=dict)
    source: Domain | None = None

    @model_validator(mode="after")
    def _field_needed(self) -> Measure:
        if self.fn is not Fn.COUNT and self.field is None:
            raise FieldError("field", f"required for fn '{self.fn.value}'")
        return self


class Kpi(Record):
    code: Code
    name: Text
    description: Text
    rule_source: Text
    """Where the rule comes from (a norm, a seed document, a recognised practice)."""
    formula: Text
    aggregate: Measure | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    scale: float = Field(default=1.0, gt=0)
    unit: Unit
    direction: Direction
    grains: tuple[Grain, ...] = Field(min_length=1)
    source: Domain
    per_driver: bool = False
    basis: Literal["events", "due_date", "period_close"] = "events"
    """What the KPI's period is: when events happened (the stream computes it), when cases fell
    due, or a snapshot at the period's close (the processor's term tracker computes those)."""
    min_sample: int = Field(default=0, ge=0)
    """Fewest observations (the denominator of a ratio, the count behind a mean or percentile)
    for a value to be used to rank entities; below it the value is stored, flagged
    ``insufficient_sample``. 0: always enough (counts, sums, levels)."""
    min_sample_source: Text | None = None
    """Where the minimum comes from (the rule behind it, for the analyst)."""
    rollup: Rollup | None = None
    """How QUARTER and YEAR follow from MONTH; unset: derived (``period_rollup``)."""
    rollup_source: Text | None = None
    """Why a declared rollup is right (required with ``rollup``)."""
    # Set on the per-driver KPIs the catalogue derives (SATISFACTION_PCT_TIEMPO, ...).
    driver: Code | None = None
    parent: Code | None = None

    @model_validator(mode="after")
    def _one_formula(self) -> Kpi:
        ratio = self.numerator is not None or self.denominator is not None
        if self.aggregate is not None and ratio:
            raise FieldError(
                "aggregate", "give either aggregate or numerator/denominator, not both"
            )
        if self.aggregate is None and not ratio:
            raise FieldError("aggregate", "missing: give aggregate or numerator and denominator")
        if ratio and self.numerator is None:
            raise FieldError("numerator", "missing (denominator needs a numerator)")
        if ratio and self.denominator is None:
            raise FieldError("denominator", "missing (numerator needs a denominator)")
        sampled = ratio or (self.aggregate is not None and self.aggregate.fn in _SAMPLED)
        if self.min_sample and not sampled:
            raise FieldError(
                "min_sample", "only ratios, means, percentiles and maxima have a sample size"
            )
        if self.min_sample and not self.min_sample_source:
            raise FieldError(
                "min_sample_source", "required with min_sample: say where it comes from"
            )
        if self.rollup is not None and not self.rollup_source:
            raise FieldError("rollup_source", "required with rollup: say why it holds")
        if self.rollup is Rollup.SUM and self._derived_rollup() is not Rollup.SUM:
            raise FieldError(
                "rollup", "sum needs counts, sums or means over events (not a snapshot)"
            )
        return self

    def _derived_rollup(self) -> Rollup:
        if self.basis == "period_close":
            return Rollup.LAST
        measures = [m for m in (self.aggregate, self.numerator, self.denominator) if m]
        if all(m.fn in _ADDITIVE for m in measures):
            return Rollup.SUM
        if self.aggregate is not None and self.aggregate.fn is Fn.MEAN:
            return Rollup.SUM  # stored as sum / n
        return Rollup.NONE

    @property
    def period_rollup(self) -> Rollup:
        """How QUARTER and YEAR values follow from MONTH values: declared, or derived (a
        snapshot takes the last month; counts, sums, their ratios and means add up; the
        rest cannot be derived)."""
        return self.rollup or self._derived_rollup()

    @property
    def is_ratio(self) -> bool:
        return self.aggregate is None

    def for_driver(self, driver: Driver) -> Kpi:
        """The same KPI restricted to one satisfaction driver (``<CODE>_<DRIVER>``)."""

        def narrowed(measure: Measure | None) -> Measure | None:
            if measure is None:
                return None
            where = {**measure.where, "driver": driver.code}
            return measure.model_copy(update={"where": where})

        return self.model_copy(
            update={
                "code": f"{self.code}_{driver.code}",
                "name": f"{self.name}: {driver.name.lower()}",
                "aggregate": narrowed(self.aggregate),
                "numerator": narrowed(self.numerator),
                "denominator": narrowed(self.denominator),
                "per_driver": False,
                "driver": driver.code,
                "parent": self.code,
            }
        )


class KpiParameter(Record):
    """A number a KPI rule uses (a threshold), stated as data with where it comes from."""

    code: Code
    value: float
    unit: Unit
    description: Text
    source: Text


class ProcedureRules(Record):
    """How a procedure's legal term is counted (TUO de la Ley 27444), as data."""

    filing_on_non_business_day: Literal["next_business_day", "same_day"]
    """A filing on a non-business day is deemed received the next business day (or that day)."""
    pause_from: Code
    """Stage that stops the clock: the file went back to the citizen (OBSERVED)."""
    pause_until: Code
    """Stage that restarts it: the citizen answered (RESUBMITTED)."""
    source: Text


class TupaTerm(Record):
    """A version of a procedure's legal term: in force for filings from ``valid_from`` until the
    next version (services.csv holds the term in force before the first version)."""

    service_id: Code
    valid_from: dt.date
    legal_term_business_days: int = Field(ge=1)
    legal_basis: Text


class KpisFile(CatalogueFile):
    procedure_rules: ProcedureRules
    parameters: tuple[KpiParameter, ...] = ()
    percentile_method: Literal["nearest_rank"]
    """How percentile KPIs (p90) pick their value; the one method the platform computes."""
    kpis: tuple[Kpi, ...] = Field(min_length=1)


# --- standards.yaml -------------------------------------------------------------------------


class Op(StrEnum):
    GE = ">="
    LE = "<="
    EQ = "=="


UNIT_RANGES: Mapping[Unit, tuple[float, float | None]] = {
    Unit.BOOLEAN: (0.0, 1.0),
    Unit.PERCENT: (0.0, 100.0),
    Unit.COUNT: (0.0, None),
}
"""The values a reported indicator's unit allows (None: no maximum), and its default range."""


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months, end-of-month safe: the last day of a month stays
    the last day of the month (30 Apr + 1 = 31 May, 28 Feb 2023 + 12 = 29 Feb 2024), another
    day keeps its number unless the month is shorter (30 Jan 2024 + 1 = 29 Feb 2024)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = _last_day(year, month + 1)
    if day == _last_day(day.year, day.month):
        return last
    return last.replace(day=min(day.day, last.day))


def period_start(day: dt.date, grain: str) -> dt.date:
    """The first day of the period of ``grain`` holding ``day``."""
    if grain == "MONTH":
        return day.replace(day=1)
    if grain == "QUARTER":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def period_end(start: dt.date, grain: str) -> dt.date:
    """The last day of the period of ``grain`` starting on ``start``."""
    months = {"MONTH": 1, "QUARTER": 3}.get(grain, 12)
    return add_months(start, months) - dt.timedelta(days=1)


def _last_day(year: int, month: int) -> dt.date:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


class Indicator(Record):
    """A value the entity self-reports with evidence (IndicatorValue.indicator_code).

    ``min``/``max``: the values accepted, by default the unit's whole range (boolean 0..1,
    percent 0..100, count 0 and up with no maximum: ``max`` None); a stated range lies inside
    the unit's. ``valid_months``: how long a reported value counts after the end of the period
    it was reported for (``valid_until``), with ``validity_source`` saying where that comes from.
    """

    code: Code
    name: Text
    unit: Unit
    direction: Direction
    min: float
    max: float | None
    valid_months: int = Field(ge=1, le=120)
    validity_source: Text
    description: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _unit_range(cls, data: Any) -> Any:
        # An unstated bound is the unit's (an unknown unit is refused on its own field).
        unit = data.get("unit") if isinstance(data, dict) else None
        if not isinstance(unit, str) or unit not in set(Unit):
            return data
        bounds = UNIT_RANGES.get(Unit(unit))
        if bounds is None:
            return data
        low, high = bounds
        return {"min": low, "max": high, **data}

    @model_validator(mode="after")
    def _reportable_unit(self) -> Indicator:
        bounds = UNIT_RANGES.get(self.unit)
        if bounds is None:
            raise FieldError("unit", "a reported indicator is boolean, percent or count")
        low, high = bounds
        shown = f"{low:g}..{high:g}" if high is not None else f"{low:g} or more"
        unit_range = f"the range of unit {self.unit.value} ({shown})"
        if self.min < low or (high is not None and self.min > high):
            raise FieldError("min", f"{self.min:g} is outside {unit_range}")
        if high is not None and (self.max is None or self.max > high):
            stated = "no maximum" if self.max is None else f"{self.max:g}"
            raise FieldError("max", f"{stated} is outside {unit_range}")
        if self.max is not None and self.max <= self.min:
            raise FieldError("max", f"{self.max:g} must be above min {self.min:g}")
        whole = self.unit in {Unit.BOOLEAN, Unit.COUNT}
        for name, bound in (("min", self.min), ("max", self.max)):
            if whole and bound is not None and bound != int(bound):
                raise FieldError(name, f"{bound:g}: a {self.unit.value} bound is a whole number")
        return self

    def accepts(self, value: float) -> bool:
        """Whether ``value`` lies in the indicator's range (bounds included)."""
        return self.min <= value and (self.max is None or value <= self.max)

    @property
    def range_text(self) -> str:
        """The range for people: ``0 or 1``, ``0..100``, ``0 or more``."""
        if self.unit is Unit.BOOLEAN and (self.min, self.max) == (0, 1):
            return "0 or 1"
        if self.max is None:
            return f"{self.min:g} or more"
        return f"{self.min:g}..{self.max:g}"

    def valid_until(self, period_end: dt.date) -> dt.date:
        """The last day a value reported for a period ending on ``period_end`` (its last day)
        still counts: ``valid_months`` calendar months later, end-of-month safe (a period
        ending 31 Dec, 12 months: 31 Dec of the next year; ending 29 Feb 2024: 28 Feb 2025)."""
        return add_months(period_end, self.valid_months)


class Criterion(Record):
    """A machine-checkable condition: ``<kpi or indicator value> <op> <threshold>``."""

    id: Annotated[str, _matching(_CRITERION_ID, "a criterion id such as E01-B1")]
    description: Text
    kpi: Code | None = None
    indicator: Code | None = None
    op: Op
    threshold: float
    reported: bool = False

    @model_validator(mode="after")
    def _one_measure(self) -> Criterion:
        if (self.kpi is None) == (self.indicator is None):
            raise FieldError("kpi", "give exactly one of kpi or indicator")
        if self.indicator is not None and not self.reported:
            raise FieldError("reported", "must be true for a self-reported indicator")
        if self.kpi is not None and self.reported:
            raise FieldError("reported", "a computed KPI is not self-reported (remove it)")
        return self

    @property
    def measure(self) -> str:
        """The KPI or indicator code whose value this criterion tests."""
        return self.kpi if self.kpi is not None else str(self.indicator)

    def holds(self, value: float) -> bool:
        if self.op is Op.GE:
            return value >= self.threshold
        if self.op is Op.LE:
            return value <= self.threshold
        return value == self.threshold


class Standard(Record):
    number: int = Field(ge=1)
    code: Code
    name: Text
    description: Text
    evidence: tuple[Text, ...] = Field(min_length=1)
    levels: dict[Code, tuple[Criterion, ...]]

    def achieved_level(self, values: Mapping[str, float]) -> str | None:
        """Highest level whose criteria, and those of every lower level, all hold.

        Levels are cumulative checklists; a measure without a value does not hold (an entity
        gets no credit for what it did not report).
        """
        achieved: str | None = None
        for level, criteria in self.levels.items():
            if not all(c.measure in values and c.holds(values[c.measure]) for c in criteria):
                break
            achieved = level
        return achieved


class Scoring(Record):
    """How the national benchmark scores, ranks and compares (stated for the analyst; the rules
    are implemented in ``pcm_benchmark``: assessment.py, ranking.py, national.py)."""

    score: Text
    overall: Text
    ranking: Text
    percentile: Text
    peer_distribution: Text
    source: Text


class StandardsFile(CatalogueFile):
    levels: tuple[Code, ...] = Field(min_length=1)
    scoring: Scoring
    indicators: tuple[Indicator, ...] = ()
    standards: tuple[Standard, ...] = Field(min_length=1)


# --- CSV catalogues -------------------------------------------------------------------------


class GovernmentLevel(StrEnum):
    NACIONAL = "NACIONAL"
    REGIONAL = "REGIONAL"
    LOCAL = "LOCAL"


class Region(Record):
    code: Code
    ubigeo: Annotated[str, Field(pattern=r"^\d{2}$")]
    name: Text


MunicipalType = Annotated[
    str,
    _matching(
        re.compile(r"[A-G]|LIMA_METROPOLITANA"),
        "a MEF municipal type (A to G or LIMA_METROPOLITANA)",
    ),
]
"""The MEF municipal classification (Programa de Incentivos), Lima Metropolitana apart."""


class PeerGroup(Record):
    code: Code
    government_level: GovernmentLevel
    name: Text
    description: Text | None = None
    municipal_type: MunicipalType | None = None
    """For municipal peer groups: the one MEF municipal type they gather."""


class Entity(Record):
    entity_id: EntityId
    name: Text
    sector: Code
    government_level: GovernmentLevel
    region: Code
    peer_group: Code
    municipal_type: MunicipalType | None = None
    """Municipalities only: the MEF type, which decides the peer group."""
    channels: CodeList


class Office(Record):
    """An office (sede) of an entity and the region whose non-working days apply there."""

    entity_id: EntityId
    office_id: Slug
    region: Code
    name: Text


class ServiceKind(StrEnum):
    ATENCION = "ATENCION"
    TRAMITE = "TRAMITE"


class Service(Record):
    service_id: Code
    entity_id: EntityRef
    name: Text
    kind: ServiceKind
    target_wait_minutes: int | None = Field(default=None, ge=0)
    target_service_minutes: int | None = Field(default=None, ge=0)
    legal_term_business_days: int | None = Field(default=None, ge=0)
    channels: CodeList
    legal_basis: Text | None = None
    calendar: Literal["GENERAL", "TRIBUTARIO"] | None = None
    """TRIBUTARIO: a tax procedure, whose terms count the decreed days that stay business days
    for tax purposes (non_working_days.csv ``tax_business_day``)."""

    @model_validator(mode="after")
    def _kind_fields(self) -> Service:
        if self.kind is ServiceKind.TRAMITE and self.legal_term_business_days is None:
            raise FieldError("legal_term_business_days", "required for kind TRAMITE")
        if self.kind is ServiceKind.ATENCION:
            if self.legal_term_business_days is not None:
                reason = "only a TRAMITE has a legal term (leave empty for ATENCION)"
                raise FieldError("legal_term_business_days", reason)
            if self.target_wait_minutes is None:
                raise FieldError("target_wait_minutes", "required for kind ATENCION")
            if self.target_service_minutes is None:
                raise FieldError("target_service_minutes", "required for kind ATENCION")
        return self

    @property
    def is_generic(self) -> bool:
        """Offered by every entity (``entity_id`` is ``*``)."""
        return self.entity_id == ALL


class WaitTarget(Record):
    """A wait target for one channel (a code, or a type covering its channels), for one service
    or every service (``*``): a phone queue is measured in seconds, an e-mail answer in hours.
    Without one, a service's ``target_wait_minutes`` applies on every channel."""

    service_id: CodeOrAll
    channel: Code
    target_wait_seconds: int = Field(ge=0)
    source: Text


class ComplaintTerm(Record):
    entity_id: EntityRef
    category: CodeOrAll
    legal_term_business_days: int = Field(ge=1)
    max_override_business_days: int = Field(default=0, ge=0)
    """Longest term an entity may set for one complaint of this row (the event's override); 0:
    no override. Never above ``legal_term_business_days``: an override only shortens the term,
    the assessed entity cannot lengthen its own."""
    legal_basis: Text

    @model_validator(mode="after")
    def _override_shortens(self) -> ComplaintTerm:
        if self.max_override_business_days > self.legal_term_business_days:
            reason = (
                f"{self.max_override_business_days} exceeds legal_term_business_days "
                f"{self.legal_term_business_days} of row '{self.entity_id},{self.category}' "
                "(an override may only shorten the term)"
            )
            raise FieldError("max_override_business_days", reason)
        return self


class DayKind(StrEnum):
    NO_LABORABLE = "NO_LABORABLE"  # decreed non-working day for the public sector
    FERIADO_REGIONAL = "FERIADO_REGIONAL"
    FERIADO_NACIONAL = "FERIADO_NACIONAL"  # only if the holidays package misses one


class NonWorkingDay(Record):
    date: dt.date
    scope: Code
    kind: DayKind
    reference: Text
    description: Text
    tax_business_day: bool | None = None
    """The decree keeps it a business day for tax purposes: tax procedures count it."""


def dump(record: Record) -> dict[str, Any]:
    """Plain data of a record (enums as values), e.g. for JSON output."""
    return record.model_dump(mode="json")
