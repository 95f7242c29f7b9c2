"""Compiles a ``KpiPlan`` into ClickHouse SQL that recomputes KPI aggregates from the facts.

One query per grain and chunk of touched (entity, period) keys:

    inner: facts of those keys, merged per (entity, period, *dedup_by*) taking every column from
           the first copy (lowest Kafka offset: one entity's events share one partition)
           -> one logical fact per ticket and kind, so a duplicate or a later message with the
           same id cannot move any KPI; a lookup on the subject's other facts (was the ticket
           served?) is a column of it, from the same read where the plan allows
           (``_logical_facts_read_once``);
    outer: ARRAY JOIN of the four slices (channel+service, channel, service, all), then one
           aggregate per ``Agg`` of the plan (countIf, uniqExactIf, sumIf, quantileExactIf, ...).

Only functions ClickHouse 18.16 already had are used (no window functions, no WITH ROLLUP, no
timezone-argument functions), so the same SQL runs on the local 18.16 server and current
releases; ``tests/unit/test_processor_sql_chdb.py`` runs it on the current engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from pcm_processor.domain.buckets import BUCKET_COLUMNS
from pcm_processor.domain.fields import (
    AtMost,
    Both,
    Col,
    Diff,
    Expr,
    IsIn,
    Less,
    Mapped,
    Not,
    Param,
    PeriodSubjectHas,
    SubjectHas,
    columns_of,
)
from pcm_processor.domain.kpis import PERCENTILE, Agg, KpiPlan
from pcm_processor.domain.registry import Const, Copy, Derivation, Label

PeriodKey = tuple[str, int]  # (entity_id, period start)

# The external table a delta query reads its subjects from: (entity_id, month_start, subject_id)
# rows sent with the query (ClickHouse's "external data"), never stored.
TOUCHED = "touched_subjects"
TOUCHED_STRUCTURE = (("entity_id", "String"), ("month_start", "DateTime"), ("subject_id", "String"))
Touched = tuple[tuple[str, int, str], ...]


class Query(NamedTuple):
    """SQL and the rows of its ``TOUCHED`` external table (none: the SQL does not read it)."""

    sql: str
    touched: Touched = ()


def literal(value: Any) -> str:
    """A SQL literal; strings escaped for ClickHouse (backslash and quote)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def literals(values: Iterable[Any]) -> str:
    return ", ".join(literal(value) for value in values)


def _alias(column: str) -> str:
    return f"f_{column}"


def _derivation(how: Derivation) -> str:
    if isinstance(how, Copy):
        return how.column
    if isinstance(how, Label):
        return f"toString({how.column})"
    if isinstance(how, Const):
        return literal(how.value)
    return f"concat({literal(how.prefix)}, {how.column})"


_KEY_SEPARATOR = "|"  # no catalogue code holds it (codes are UPPER_SNAKE)


def _joined(parts: list[str]) -> list[str]:
    joined = [parts[0]]
    for part in parts[1:]:
        joined += [literal(_KEY_SEPARATOR), part]
    return joined


@dataclass(frozen=True)
class Scope:
    """The facts one aggregate query reads, and for an incremental query the offset bounds of
    its sides."""

    entities: str
    bucket: str
    rows: str
    """WHERE clause selecting those facts (without prefilter)."""
    subject_rows: str
    """WHERE clause selecting the facts a subject-wide lookup reads (every period)."""
    bounds: Mapping[int, Mapping[str, int]] | None = None
    """Per side, per entity: facts with a Kafka offset below the bound count on that side (the
    side's watermark plus one). None: every stored fact counts, and there is no side column."""
    grains: int = 0
    """With sides: how many grains one query computes, each fact read once and counted once per
    grain (``grain`` column, the grain's index; ``bucket`` then picks its period by it)."""

    @property
    def sides(self) -> tuple[int, ...]:
        return tuple(sorted(self.bounds)) if self.bounds else ()

    @property
    def lead(self) -> str:
        """The columns that come before ``entity_id`` in every grouping: side, then grain."""
        if not self.bounds:
            return ""
        return "side, grain, " if self.grains else "side, "

    def bound(self) -> str:
        """SQL: the offset bound of the row's side and entity (0, nothing counts, if absent)."""
        assert self.bounds
        sides = self.sides
        expression = _bound_of(self.bounds[sides[-1]])
        for side in reversed(sides[:-1]):
            expression = f"if(side = {side}, {_bound_of(self.bounds[side])}, {expression})"
        return expression

    def facts(self, source: str, where: str) -> str:
        """FROM clause of the facts in scope: with sides, every fact once per side whose
        bound it is under (``side`` column)."""
        if not self.bounds:
            return f"{source} WHERE {where}"
        pairs = [(side, grain) for side in self.sides for grain in range(self.grains or 1)]
        joined = "[" + ", ".join(f"toUInt8({side})" for side, _ in pairs) + "] AS side"
        if self.grains:
            # Arrays joined side by side, not crossed: one row per (side, grain) pair.
            joined += ", [" + ", ".join(f"toUInt8({grain})" for _, grain in pairs) + "] AS grain"
        return (
            f"(SELECT * FROM {source} WHERE {where}) ARRAY JOIN {joined} "
            f"WHERE kafka_offset < {self.bound()}"
        )


def _bucket_of(grains: Sequence[str]) -> str:
    """SQL: the period column of the row's grain (``grain`` indexes ``grains``)."""
    columns = [BUCKET_COLUMNS[grain] for grain in grains]
    if len(columns) == 1:
        return columns[0]
    choices = "".join(f"grain = {index}, {column}, " for index, column in enumerate(columns[:-1]))
    return f"multiIf({choices}{columns[-1]})"


def _lookup_alias(index: int) -> str:
    """Column of the inner query holding lookup ``index`` of the plan."""
    return f"l_{index}"


def _aggregate_alias(index: int) -> str:
    """Column of an aggregate query holding aggregate ``index`` of the plan."""
    return f"a_{index}"


def _bound_of(bounds: Mapping[str, int]) -> str:
    entities = sorted(bounds)
    values = ", ".join(str(bounds[e]) for e in entities)
    return f"transform(entity_id, [{literals(entities)}], [{values}], 0)"


@dataclass(frozen=True)
class SqlCompiler:
    plan: KpiPlan
    database: str

    @property
    def table(self) -> str:
        return f"{self.database}.{self.plan.domain.table}"

    def expression(self, expr: Expr, scope: Scope, column: Callable[[str], str] = _alias) -> str:
        """SQL of a field: on a logical fact of the inner query (columns by their ``f_`` alias),
        or on one raw fact (``column`` = the plain name, inside lookups)."""
        if isinstance(expr, Col):
            return column(expr.column)
        if isinstance(expr, Diff):
            return f"(toInt64({column(expr.minuend)}) - toInt64({column(expr.subtrahend)}))"
        if isinstance(expr, Param):
            return literal(self.plan.params[expr.name])
        if isinstance(expr, Mapped):
            return self._mapped(expr, column)
        if isinstance(expr, SubjectHas | PeriodSubjectHas):
            return _lookup_alias(self.plan.lookups.index(expr))
        if isinstance(expr, Not):
            return f"(NOT {self.expression(expr.operand, scope, column)})"
        if isinstance(expr, IsIn):
            return f"({self.expression(expr.value, scope, column)} IN ({literals(expr.values)}))"
        left = self.expression(expr.left, scope, column)
        right = self.expression(expr.right, scope, column)
        operator = {AtMost: "<=", Less: "<", Both: "AND"}[type(expr)]
        return f"({left} {operator} {right})"

    def _source(self, rows: str) -> str:
        """The facts to read: the domain's table, or for a derived source the union of its
        parts' tables, each already narrowed to ``rows`` (18.16 pushes no filter into a view)."""
        parts = self.plan.domain.parts
        if not parts:
            return self.table
        branches = []
        for part in parts:
            columns = ", ".join(
                f"{_derivation(how)} AS {name}" for name, how in part.columns.items()
            )
            branches.append(f"SELECT {columns} FROM {self.database}.{part.facts.name} WHERE {rows}")
        return "(" + " UNION ALL ".join(branches) + ")"

    def _mapped(self, expr: Mapped, column: Callable[[str], str]) -> str:
        """transform() of the fact's key columns through the catalogue map (0 if absent)."""
        table = self.plan.params[expr.name]
        parts = [f"toString({column(key)})" for key in expr.keys]
        key = parts[0] if len(parts) == 1 else f"concat({', '.join(_joined(parts))})"
        keys = literals(_KEY_SEPARATOR.join(str(part) for part in k) for k in table)
        values = ", ".join(str(int(v)) for v in table.values())
        return f"transform({key}, [{keys}], [{values}], 0)"

    def _lookup(self, expr: SubjectHas | PeriodSubjectHas, scope: Scope) -> str:
        """Membership of the fact's subject in the set of subjects with a matching fact: in any
        period (``SubjectHas``) or in the fact's period, on the fact's side. A column of the
        inner query (it depends on the grouping keys only), so each lookup reads its facts once
        however many aggregates use it (18.16 builds an IN set per occurrence)."""
        subject = self.plan.domain.subject
        if isinstance(expr, SubjectHas):
            # Any period: one grain's rows are enough (every grain sees the same subjects).
            side = "side, " if scope.bounds else ""
            grain = " AND grain = 0" if scope.grains else ""
            # The lookup's filter goes before the sides and grains multiply the rows.
            matching = f"{scope.subject_rows} AND {expr.column} IN ({literals(expr.values)})"
            facts = scope.facts(self.table, matching)
            return (
                f"(({side}entity_id, {_alias(subject)}) IN "
                f"(SELECT {side}entity_id, {subject} FROM {facts}{grain}))"
            )
        where = self.expression(expr.where, scope, column=lambda name: name)
        facts = scope.facts(self.table, f"{scope.rows} AND {where}")
        lead = scope.lead
        return (
            f"(({lead}entity_id, period, {_alias(subject)}) IN (SELECT {lead}entity_id, "
            f"toUInt32({scope.bucket}), {subject} FROM {facts}))"
        )

    def condition(self, agg: Agg, scope: Scope) -> str:
        fields = self.plan.domain.fields
        parts = [
            f"{self.expression(fields[name], scope)} IN ({literals(values)})"
            for name, values in agg.where
        ]
        return " AND ".join(parts) if parts else "1"

    def aggregate(self, agg: Agg, scope: Scope) -> str:
        cond = self.condition(agg, scope)
        if agg.fn == "count":
            return f"countIf({cond})"
        assert agg.field is not None
        value = self.expression(self.plan.domain.fields[agg.field], scope)
        if agg.fn == "p90":
            # Nearest rank, in integers (kpis.nearest_rank); arrayElement(.., 0) is 0 when empty.
            rank = f"toUInt32(intDiv({PERCENTILE} * countIf({cond}) + 99, 100))"
            return f"arrayElement(arraySort(groupArrayIf({value}, {cond})), {rank})"
        functions = {
            "uniq": "uniqExactIf",
            "sum": "sumIf",
            "max": "maxIf",
            "collect": "groupUniqArrayIf",
        }
        return f"{functions[agg.fn]}({value}, {cond})"

    def _merged_columns(self) -> list[str]:
        domain = self.plan.domain
        used = set().union(*(columns_of(expr) for expr in domain.fields.values()))
        return sorted(used - set(domain.dedup_by))

    def recompute(self, grain: str, keys: Sequence[PeriodKey], months: Iterable[int]) -> str:
        """Aggregates of every slice of the given (entity, period) keys at one grain, from every
        stored fact.

        Columns: entity_id, period (UInt32), channel slice, service slice, distinct events of the
        (entity, period) counted by ``n_events`` on the all/all slice, then one per plan aggregate.
        """
        return self._query(self._period_scope(grain, keys, months))

    def build(
        self,
        grain: str,
        keys: Sequence[PeriodKey],
        months: Iterable[int],
        watermarks: Mapping[str, int],
    ) -> str:
        """As ``recompute``, from the facts up to each entity's watermark (Kafka offset) only,
        with a leading ``side`` column (always 1): the state an incremental engine starts from.
        """
        scope = self._period_scope(grain, keys, months)
        bounds = {1: {entity: offset + 1 for entity, offset in watermarks.items()}}
        return self._query(replace(scope, bounds=bounds))

    def delta(
        self,
        grains: Sequence[str],
        subjects: Mapping[tuple[str, str], Collection[int]],
        every_period: bool,
        before: Mapping[str, int],
        after: Mapping[str, int],
    ) -> Query:
        """What the given subjects' logical facts add to each slice between two watermarks: their
        aggregates up to each entity's ``after`` watermark (side 1) minus those up to its
        ``before`` watermark (side 0), for every grain of ``grains`` in the one query (the facts
        are read once). Columns: grain (its index in ``grains``), entity_id, period, the two
        slice columns, then the differences of n_events and of each aggregate; slices where
        nothing moved are left out.

        A KPI state that holds every fact up to ``before`` holds every fact up to ``after`` once
        side 1 is added and side 0 taken away, for aggregates that are sums over subjects (counts,
        sums, distinct subjects): any other subject has no fact in between, so it contributes
        the same to both sides. ``subjects``: each (entity, subject id) with the months of its
        new facts; its facts in other months cannot change, unless ``every_period`` (the domain
        has a subject-wide lookup), which reads every period of the subjects.
        """
        if self.plan.domain.parts:
            raise ValueError(f"{self.plan.domain.name}: a derived source has no subject scope")
        touched: Touched = ()
        if every_period:
            rows = self._subjects_anywhere(subjects)
        else:
            # The fact tables' sorting key starts (entity_id, month_start, subject): a tuple IN
            # on it reads only the granules of these subjects (fine granules, migration 0011),
            # not their entities' months. Sent as an external table: a literal list of
            # thousands of tuples costs more to parse than the read itself.
            rows = (
                f"(entity_id, month_start, {self.plan.domain.subject}) IN "
                f"(SELECT entity_id, month_start, subject_id FROM {TOUCHED})"
            )
            touched = tuple(
                (entity, month, subject_id)
                for (entity, subject_id), months in subjects.items()
                for month in months
            )
        bounds = {
            0: {entity: offset + 1 for entity, offset in before.items()},
            1: {entity: offset + 1 for entity, offset in after.items()},
        }
        entities = literals(sorted({entity for entity, _ in subjects}))
        scope = Scope(entities, _bucket_of(grains), rows, rows, bounds, len(grains))
        return Query(self._difference(self._query(scope)), touched)

    def _difference(self, sides: str) -> str:
        """Side 1 minus side 0 of a two-sided query, per grain, period and slice, only where
        something moved: half the rows, and none for the slices a replay leaves as they were
        (the processor's thread handles every row; ClickHouse subtracts for less)."""
        columns = ["n_events", *(_aggregate_alias(i) for i in range(len(self.plan.aggregates)))]
        moved = [f"sumIf({c}, side = 1) - sumIf({c}, side = 0) AS d_{c}" for c in columns]
        return f"""
SELECT grain, entity_id, period, s_first, s_second,
  {", ".join(moved)}
FROM ({sides})
GROUP BY grain, entity_id, period, s_first, s_second
HAVING {" OR ".join(f"d_{c} != 0" for c in columns)}
"""

    def stored_periods(
        self,
        grains: Sequence[str],
        months: Sequence[tuple[str, int]],
        since: Mapping[str, int],
    ) -> str:
        """The periods of each grain (columns in ``grains`` order, arrays of starts) with a fact
        at a Kafka offset below the entity's ``since``, per (entity, month) of ``months``. Every
        stored fact counts, whether or not a KPI filters it: a period with only such facts is
        built, which is exact, only not needed. Reads the sorting key and the bucket columns
        only."""
        entities = literals(sorted({entity for entity, _ in months}))
        starts = literals(sorted({month for _, month in months}))
        pairs = ", ".join(f"({literal(entity)}, {month})" for entity, month in months)
        bound = _bound_of(since)
        periods = ", ".join(
            f"groupUniqArray(toUInt32({BUCKET_COLUMNS[grain]}))" for grain in grains
        )
        return (
            f"SELECT entity_id, toUInt32(month_start) AS month, {periods} FROM {self.table} "
            f"WHERE entity_id IN ({entities}) AND month_start IN ({starts}) "
            f"AND (entity_id, toUInt32(month_start)) IN ({pairs}) AND kafka_offset < {bound} "
            "GROUP BY entity_id, month"
        )

    def _subjects_anywhere(self, subjects: Iterable[tuple[str, str]]) -> str:
        """WHERE clause of every fact of the subjects, in any period.

        Entities and subject ids as two lists: a superset of the pairs (an id may exist at
        another listed entity), which is harmless: an untouched subject has no fact between the
        two watermarks, so it adds the same to both sides. The lists keep the SQL small."""
        pairs = list(subjects)
        entities = literals(sorted({entity for entity, _ in pairs}))
        ids = literals(sorted({subject_id for _, subject_id in pairs}))
        return f"entity_id IN ({entities}) AND {self.plan.domain.subject} IN ({ids})"

    def _period_scope(self, grain: str, keys: Sequence[PeriodKey], months: Iterable[int]) -> Scope:
        bucket = BUCKET_COLUMNS[grain]
        entities = literals(sorted({entity for entity, _ in keys}))
        tuples = ", ".join(f"({literal(entity)}, {period})" for entity, period in keys)
        rows = (
            f"entity_id IN ({entities}) AND month_start IN ({literals(sorted(set(months)))}) "
            f"AND (entity_id, toUInt32({bucket})) IN ({tuples})"
        )
        return Scope(entities, bucket, rows, f"entity_id IN ({entities})")

    def _query(self, scope: Scope) -> str:
        first, second = (_alias(name) for name in self.plan.domain.slice_by)
        side = scope.lead
        aggregates = "".join(
            f",\n  {self.aggregate(a, scope)} AS {_aggregate_alias(index)}"
            for index, a in enumerate(self.plan.aggregates)
        )
        return f"""
SELECT {side}entity_id, period, tupleElement(slice, 1) AS s_first,
  tupleElement(slice, 2) AS s_second, sum(n_events) AS n_events{aggregates}
FROM ({self._logical_facts(scope)})
ARRAY JOIN [({first}, {second}), ({first}, ''), ('', {second}), ('', '')] AS slice
GROUP BY {side}entity_id, period, s_first, s_second
"""

    def _prefilter(self) -> str | None:
        if self.plan.prefilter is None:
            return None
        column, labels = self.plan.prefilter
        return f"{column} IN ({literals(labels)})"

    def _reads_once(self) -> bool:
        """Whether the lookups come from the same read as the facts (``_logical_facts``): only
        period lookups, on a stored table (a derived source reads several) whose subject is a
        dedup column, without a prefilter (the lookups read the facts it leaves out). Other
        plans read the facts once more per lookup, which is slower and as exact."""
        domain = self.plan.domain
        return (
            bool(self.plan.lookups)
            and all(isinstance(lookup, PeriodSubjectHas) for lookup in self.plan.lookups)
            and self.plan.prefilter is None
            and not domain.parts
            and domain.subject in domain.dedup_by
        )

    def _first_copy(self) -> str:
        """Columns of a logical fact: its dedup key, and the rest from its first copy."""
        domain = self.plan.domain
        dedup = ", ".join(f"{column} AS {_alias(column)}" for column in domain.dedup_by)
        merged = "".join(
            f", argMin({c}, kafka_offset) AS {_alias(c)}" for c in self._merged_columns()
        )
        return dedup + merged

    def _logical_facts(self, scope: Scope) -> str:
        """One row per logical fact (first copy per dedup key) in scope, with its lookups."""
        if self._reads_once():
            return self._logical_facts_read_once(scope)
        domain = self.plan.domain
        prefilter = self._prefilter()
        side = scope.lead
        lookups = "".join(
            f",\n    {self._lookup(lookup, scope)} AS {_lookup_alias(index)}"
            for index, lookup in enumerate(self.plan.lookups)
        )
        where = scope.rows + (f" AND {prefilter}" if prefilter else "")
        return f"""
  SELECT {side}entity_id, toUInt32({scope.bucket}) AS period, {self._first_copy()},
    uniqExact(event_id) AS n_events{lookups}
  FROM {scope.facts(self._source(scope.rows), where)}
  GROUP BY {side}entity_id, period, {", ".join(_alias(c) for c in domain.dedup_by)}"""

    def _logical_facts_read_once(self, scope: Scope) -> str:
        """As ``_logical_facts``, reading the facts once instead of once more per lookup: the
        logical facts, each with a flag per lookup saying whether one of its raw facts matches,
        are grouped per subject (all of a subject's facts share its period); a lookup is then
        whether any of them matched, and the subject's logical facts unfold again."""
        domain = self.plan.domain
        subject = _alias(domain.subject)
        carried = [_alias(c) for c in domain.dedup_by if c != domain.subject]
        carried += [_alias(c) for c in self._merged_columns()]
        carried.append("n_events")
        flags = lookups = unfolded = ""
        for index, lookup in enumerate(self.plan.lookups):
            assert isinstance(lookup, PeriodSubjectHas)
            matches = self.expression(lookup.where, scope, column=lambda column: column)
            flags += f", max({matches}) AS h_{index}"
            lookups += f", max(h_{index}) AS {_lookup_alias(index)}"
            unfolded += f", {_lookup_alias(index)}"
        for position, column in enumerate(carried, start=1):
            unfolded += f", tupleElement(fact, {position}) AS {column}"
        side = scope.lead
        return f"""
  SELECT {side}entity_id, period, {subject}{unfolded}
  FROM (
    SELECT {side}entity_id, period, {subject},
      groupArray(tuple({", ".join(carried)})) AS logical{lookups}
    FROM (
      SELECT {side}entity_id, toUInt32({scope.bucket}) AS period, {self._first_copy()},
        uniqExact(event_id) AS n_events{flags}
      FROM {scope.facts(self.table, scope.rows)}
      GROUP BY {side}entity_id, period, {", ".join(_alias(c) for c in domain.dedup_by)}
    )
    GROUP BY {side}entity_id, period, {subject}
  )
  ARRAY JOIN logical AS fact"""

    def subject_buckets(self, subjects: Sequence[tuple[str, str]]) -> str:
        """Bucket starts of every KPI-relevant fact of these subjects, in any period.

        When an event changes a derived field of its whole subject (an observation makes the
        procedure "reworked"), the periods of the subject's other facts must be recomputed too.
        """
        subject = self.plan.domain.subject
        entities = literals(sorted({entity for entity, _ in subjects}))
        pairs = ", ".join(f"({literal(e)}, {literal(s)})" for e, s in subjects)
        prefilter = self._prefilter()
        return (
            "SELECT DISTINCT entity_id, toUInt32(hour_start), toUInt32(day_start), "
            f"toUInt32(month_start) FROM {self.table} WHERE entity_id IN ({entities}) "
            f"AND (entity_id, {subject}) IN ({pairs})" + (f" AND {prefilter}" if prefilter else "")
        )
