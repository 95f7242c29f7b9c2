"""The improvement plans in PostgreSQL (group ``benchmark``, tables ``improvement_plans`` and
``improvement_plan_history``): one transaction per call; every change writes its history row,
with who and when, in the same transaction as the plan's new state.

A change reads the plan ``FOR UPDATE`` before it checks the move (``plans.advance_refusal``,
``plans.close_refusal``): two moves of one plan at once are serialized, the second judged
against the stage the first left.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from pcm_common.outbox import Connections
from pcm_common.push.reading import decode_token, encode_token
from psycopg.rows import TupleRow

from pcm_benchmark.plans import Action, Change, Stage, Terms, advance_refusal, close_refusal


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the credential's holder, its role and token id."""

    holder: str
    role: str
    token_id: str


@dataclass(frozen=True)
class HistoryRow:
    change: Change
    from_stage: Stage | None
    to_stage: Stage
    comment: str
    actor: Actor
    changed_at: dt.datetime


@dataclass(frozen=True)
class StoredPlan:
    entity_id: str
    plan_id: str
    title: str
    standard_code: str
    criterion_id: str
    kpi_code: str
    baseline: float
    baseline_period: dt.date
    target: float
    registered_on: dt.date
    deadline: dt.date
    owner_role: str
    actions: tuple[Action, ...]
    stage: Stage
    registered_at: dt.datetime
    updated_at: dt.datetime
    history: tuple[HistoryRow, ...] = ()


@dataclass(frozen=True)
class NewPlan:
    entity_id: str
    plan_id: str
    title: str
    standard_code: str
    criterion_id: str
    owner_role: str
    terms: Terms
    baseline: float
    baseline_period: dt.date
    registered_on: dt.date


@dataclass(frozen=True)
class PlanPage:
    plans: list[StoredPlan]
    next_token: str


class PlanExists(Exception):
    """The entity already has a plan with this id (ALREADY_EXISTS)."""


class PlanNotFound(Exception):
    """No such plan of the entity (NOT_FOUND)."""


class MoveRefused(Exception):
    """A stage move or closing the PDCA cycle does not allow (FAILED_PRECONDITION)."""


_COLUMNS = (
    "entity_id, plan_id, title, standard_code, criterion_id, kpi_code, baseline, "
    "baseline_period, target, registered_on, deadline, owner_role, actions, stage, "
    "registered_at, updated_at"
)
_HISTORY = """
INSERT INTO improvement_plan_history (entity_id, plan_id, change, from_stage, to_stage, comment,
    actor, actor_role, actor_token_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
Connection = psycopg.Connection[TupleRow]


class PlanBook:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    # --- writes --------------------------------------------------------------------------

    def register(self, plan: NewPlan, actor: Actor) -> StoredPlan:
        actions = [
            {"description": a.description, "start": a.start.isoformat(), "due": a.due.isoformat()}
            for a in plan.terms.actions
        ]
        with self._connections.connection() as conn, conn.transaction():
            inserted = conn.execute(
                "INSERT INTO improvement_plans (entity_id, plan_id, title, standard_code, "
                "criterion_id, kpi_code, baseline, baseline_period, target, registered_on, "
                "deadline, owner_role, actions, stage) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (entity_id, plan_id) DO NOTHING RETURNING plan_id",
                (
                    plan.entity_id,
                    plan.plan_id,
                    plan.title,
                    plan.standard_code,
                    plan.criterion_id,
                    plan.terms.kpi_code,
                    plan.baseline,
                    plan.baseline_period,
                    plan.terms.target,
                    plan.registered_on,
                    plan.terms.deadline,
                    plan.owner_role,
                    json.dumps(actions),
                    Stage.PLAN.value,
                ),
            ).fetchone()
            if inserted is None:
                raise PlanExists(f"plan_id: {plan.entity_id} already has a plan {plan.plan_id!r}")
            self._record(conn, plan.entity_id, plan.plan_id, Change.REGISTERED, None,
                         Stage.PLAN, "", actor)  # fmt: skip
            return self._read(conn, plan.entity_id, plan.plan_id, history=True)

    def advance(
        self, entity_id: str, plan_id: str, wanted: Stage, note: str, actor: Actor
    ) -> StoredPlan:
        with self._connections.connection() as conn, conn.transaction():
            current = self._locked_stage(conn, entity_id, plan_id)
            refusal = advance_refusal(current, wanted)
            if refusal is not None:
                raise MoveRefused(refusal)
            self._move(conn, entity_id, plan_id, wanted)
            self._record(conn, entity_id, plan_id, Change.ADVANCED, current, wanted, note, actor)
            return self._read(conn, entity_id, plan_id, history=True)

    def comment(self, entity_id: str, plan_id: str, comment: str, actor: Actor) -> StoredPlan:
        with self._connections.connection() as conn, conn.transaction():
            current = self._locked_stage(conn, entity_id, plan_id)
            conn.execute(
                "UPDATE improvement_plans SET updated_at = now() "
                "WHERE entity_id = %s AND plan_id = %s",
                (entity_id, plan_id),
            )
            self._record(
                conn, entity_id, plan_id, Change.COMMENTED, current, current, comment, actor
            )
            return self._read(conn, entity_id, plan_id, history=True)

    def close(self, entity_id: str, plan_id: str, comment: str, actor: Actor) -> StoredPlan:
        with self._connections.connection() as conn, conn.transaction():
            current = self._locked_stage(conn, entity_id, plan_id)
            refusal = close_refusal(current)
            if refusal is not None:
                raise MoveRefused(f"stage: {refusal}")
            self._move(conn, entity_id, plan_id, Stage.CLOSED)
            self._record(
                conn, entity_id, plan_id, Change.CLOSED, current, Stage.CLOSED, comment, actor
            )
            return self._read(conn, entity_id, plan_id, history=True)

    @staticmethod
    def _locked_stage(conn: Connection, entity_id: str, plan_id: str) -> Stage:
        row = conn.execute(
            "SELECT stage FROM improvement_plans WHERE entity_id = %s AND plan_id = %s FOR UPDATE",
            (entity_id, plan_id),
        ).fetchone()
        if row is None:
            raise PlanNotFound(f"plan_id: {entity_id} has no plan {plan_id!r}")
        return Stage(row[0])

    @staticmethod
    def _move(conn: Connection, entity_id: str, plan_id: str, stage: Stage) -> None:
        conn.execute(
            "UPDATE improvement_plans SET stage = %s, updated_at = now() "
            "WHERE entity_id = %s AND plan_id = %s",
            (stage.value, entity_id, plan_id),
        )

    @staticmethod
    def _record(
        conn: Connection,
        entity_id: str,
        plan_id: str,
        change: Change,
        from_stage: Stage | None,
        to_stage: Stage,
        comment: str,
        actor: Actor,
    ) -> None:
        conn.execute(
            _HISTORY,
            (
                entity_id,
                plan_id,
                change.value,
                from_stage.value if from_stage is not None else "",
                to_stage.value,
                comment,
                actor.holder,
                actor.role,
                actor.token_id,
            ),
        )

    # --- reads ---------------------------------------------------------------------------

    def get(self, entity_id: str, plan_id: str) -> StoredPlan:
        with self._connections.connection() as conn:
            return self._read(conn, entity_id, plan_id, history=True)

    def _read(self, conn: Connection, entity_id: str, plan_id: str, history: bool) -> StoredPlan:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM improvement_plans WHERE entity_id = %s AND plan_id = %s",
            (entity_id, plan_id),
        ).fetchone()
        if row is None:
            raise PlanNotFound(f"plan_id: {entity_id} has no plan {plan_id!r}")
        plan = _plan(row)
        if not history:
            return plan
        return _with_history(plan, _history(conn, [(entity_id, plan_id)]))

    def list(
        self,
        entity_id: str | None,
        standard_code: str,
        stage: Stage | None,
        include_history: bool,
        page_size: int,
        page_token: str,
    ) -> PlanPage:
        """Newest registration first. Raises ValueError (``page_token: ...``) for a token this
        book did not give."""
        after = decode_token(page_token)
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("entity_id", entity_id),
            ("standard_code", standard_code or None),
            ("stage", stage.value if stage is not None else None),
        ):
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        if after is not None:
            try:
                key = int(after[1])
            except ValueError as error:
                raise ValueError("page_token: not a token this service gave") from error
            conditions.append("(registered_at, id) < (%s, %s)")
            params += [after[0], key]
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        with self._connections.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, id FROM improvement_plans {where}"
                "ORDER BY registered_at DESC, id DESC LIMIT %s",
                (*params, page_size + 1),
            ).fetchall()
            more = len(rows) > page_size
            rows = rows[:page_size]
            plans = [_plan(row[:-1]) for row in rows]
            if include_history and plans:
                rows_of = _history(conn, [(p.entity_id, p.plan_id) for p in plans])
                plans = [_with_history(p, rows_of) for p in plans]
        token = encode_token(rows[-1][14], str(rows[-1][-1])) if more else ""
        return PlanPage(plans, token)


def _plan(row: Sequence[Any]) -> StoredPlan:
    (entity_id, plan_id, title, standard, criterion, kpi, baseline, baseline_period, target,
     registered_on, deadline, owner, actions, stage, registered_at, updated_at) = row  # fmt: skip
    return StoredPlan(
        entity_id,
        plan_id,
        title,
        standard,
        criterion,
        kpi,
        baseline,
        baseline_period,
        target,
        registered_on,
        deadline,
        owner,
        tuple(_action(a) for a in actions),
        Stage(stage),
        registered_at,
        updated_at,
    )


def _action(stored: dict[str, str]) -> Action:
    return Action(
        stored["description"],
        dt.date.fromisoformat(stored["start"]),
        dt.date.fromisoformat(stored["due"]),
    )


def _history(
    conn: Connection, plans: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[HistoryRow]]:
    entities = [entity for entity, _ in plans]
    ids = [plan for _, plan in plans]
    rows = conn.execute(
        "SELECT h.entity_id, h.plan_id, change, from_stage, to_stage, comment, actor, actor_role, "
        "actor_token_id, changed_at FROM improvement_plan_history h "
        "JOIN unnest(%s::text[], %s::text[]) AS p(entity_id, plan_id) "
        "ON h.entity_id = p.entity_id AND h.plan_id = p.plan_id ORDER BY h.id",
        (entities, ids),
    ).fetchall()
    found: dict[tuple[str, str], list[HistoryRow]] = {}
    for entity, plan, change, before, after, comment, holder, role, token, at in rows:
        found.setdefault((entity, plan), []).append(
            HistoryRow(
                Change(change),
                Stage(before) if before else None,
                Stage(after),
                comment,
                Actor(holder, role, token),
                at,
            )
        )
    return found


def _with_history(plan: StoredPlan, history: dict[tuple[str, str], list[HistoryRow]]) -> StoredPlan:
    rows = tuple(history.get((plan.entity_id, plan.plan_id), ()))
    return replace(plan, history=rows)
