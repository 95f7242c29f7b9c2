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


Expr = Col | Diff | AtMost | SubjectHas


def columns_of(expr: Expr) -> frozenset[str]:
    """Fact-table columns an expression reads from the logical fact itself."""
    if isinstance(expr, Col):
        return frozenset({expr.column})
    if isinstance(expr, Diff):
        return frozenset({expr.minuend, expr.subtrahend})
    if isinstance(expr, AtMost):
        return columns_of(expr.left) | columns_of(expr.right)
    return frozenset()  # SubjectHas reads other facts, by subject


def subject_lookups(expr: Expr) -> tuple[SubjectHas, ...]:
    if isinstance(expr, SubjectHas):
        return (expr,)
    if isinstance(expr, AtMost):
        return subject_lookups(expr.left) + subject_lookups(expr.right)
    return ()


def evaluate(expr: Expr, fact: Mapping[str, Any], subject_has: Mapping[SubjectHas, bool]) -> Any:
    """Python meaning of an expression on one logical fact (used by the reference)."""
    if isinstance(expr, Col):
        return fact[expr.column]
    if isinstance(expr, Diff):
        return int(fact[expr.minuend]) - int(fact[expr.subtrahend])
    if isinstance(expr, AtMost):
        return evaluate(expr.left, fact, subject_has) <= evaluate(expr.right, fact, subject_has)
    return subject_has[expr]
