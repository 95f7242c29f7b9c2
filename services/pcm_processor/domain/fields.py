"""The tiny expression language in which a fact domain declares the fields KPIs filter on.

The KPI catalogue speaks of fields (``wait_s``, ``within_target``, ``reworked``); a fact domain
says what each one is in terms of its table's columns, once, as data. Two interpreters read the
same declaration: the ClickHouse SQL compiler (adapters) and the pure-Python reference
(domain/reference.py), so the code path that computes KPIs and the one that checks them cannot
silently disagree on what a field means.

Every expression is evaluated on a *logical fact*: the rows of one dedup group (e.g. one ticket
and kind) merged by taking the maximum of each column, so duplicates change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Col:
    """A column of the fact table, as it is (max over the dedup group)."""

    column: str


@dataclass(frozen=True)
class Diff:
    """``minuend - subtrahend`` of two DateTime columns, in seconds (signed)."""

    minuend: str
    subtrahend: str


@dataclass(frozen=True)
class AtMost:
    """Boolean: ``left <= right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class SubjectHas:
    """Boolean: the fact's subject (ticket, procedure) has a fact, in any period, whose
    ``column`` is one of ``values`` (e.g. the procedure was OBSERVED at some point)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Param:
    """A number the catalogue states (``parameters`` of catalogues/kpis.yaml), e.g. the
    short-abandon threshold: a rule the oversight body may change without a code change."""

    name: str


@dataclass(frozen=True)
class Mapped:
    """A value the catalogue assigns to the fact's ``keys`` columns (e.g. the wait target of its
    service on its channel), looked up when KPIs are computed, not when the fact was stored: a
    catalogue change applies to every recomputation. ``name`` is a map of
    ``pcm_processor.domain.facts.catalogue_maps``."""

    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Less:
    """Boolean: ``left < right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class IsIn:
    """Boolean: the value is one of ``values``."""

    value: Expr
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Both:
    """Boolean: ``left and right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class PeriodSubjectHas:
    """Boolean: the fact's subject has, in the same entity and period, a fact for which
    ``where`` holds (e.g. the ticket was served). ``where`` reads one raw fact's columns.

    Exact because all facts of one subject share its period (attentions are bucketed by the
    ticket's issue time)."""

    where: Expr


Expr = (
    Col | Diff | AtMost | SubjectHas | Param | Mapped | Less | IsIn | Both | Not | PeriodSubjectHas
)

Lookup = SubjectHas | PeriodSubjectHas
"""Expressions answered from other facts of the subject (sets computed before evaluating)."""


def _operands(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, AtMost | Less | Both):
        return (expr.left, expr.right)
    if isinstance(expr, IsIn):
        return (expr.value,)
    if isinstance(expr, Not):
        return (expr.operand,)
    return ()


def columns_of(expr: Expr) -> frozenset[str]:
    """Fact-table columns an expression reads from the logical fact itself."""
    if isinstance(expr, Col):
        return frozenset({expr.column})
    if isinstance(expr, Diff):
        return frozenset({expr.minuend, expr.subtrahend})
    if isinstance(expr, Mapped):
        return frozenset(expr.keys)
    # Lookups read other facts, by subject; parameters read the catalogue.
    return frozenset().union(*(columns_of(operand) for operand in _operands(expr)))


def lookups_of(expr: Expr) -> tuple[Lookup, ...]:
    if isinstance(expr, SubjectHas | PeriodSubjectHas):
        return (expr,)
    return tuple(found for operand in _operands(expr) for found in lookups_of(operand))


def subject_lookups(expr: Expr) -> tuple[SubjectHas, ...]:
    """Lookups across periods: a new fact of the subject changes its other periods too."""
    return tuple(lookup for lookup in lookups_of(expr) if isinstance(lookup, SubjectHas))


def params_of(expr: Expr) -> frozenset[str]:
    """Catalogue values an expression reads: parameters and maps, by name."""
    if isinstance(expr, Param | Mapped):
        return frozenset({expr.name})
    inner = expr.where if isinstance(expr, PeriodSubjectHas) else None
    nested = params_of(inner) if inner is not None else frozenset()
    return nested.union(*(params_of(operand) for operand in _operands(expr)))


def evaluate(
    expr: Expr,
    fact: Mapping[str, Any],
    lookups: Mapping[Lookup, bool],
    params: Mapping[str, Any],
) -> Any:
    """Python meaning of an expression on one fact (used by the reference)."""
    if isinstance(expr, Col):
        return fact[expr.column]
    if isinstance(expr, Mapped):
        return params[expr.name].get(tuple(fact[key] for key in expr.keys), 0)
    if isinstance(expr, Diff):
        return int(fact[expr.minuend]) - int(fact[expr.subtrahend])
    if isinstance(expr, Param):
        return params[expr.name]
    if isinstance(expr, SubjectHas | PeriodSubjectHas):
        return lookups[expr]
    if isinstance(expr, Not):
        return not evaluate(expr.operand, fact, lookups, params)
    if isinstance(expr, IsIn):
        return evaluate(expr.value, fact, lookups, params) in expr.values
    left = evaluate(expr.left, fact, lookups, params)
    right = evaluate(expr.right, fact, lookups, params)
    if isinstance(expr, AtMost):
        return left <= right
    if isinstance(expr, Less):
        return left < right
    return bool(left and right)
