"""Improvement plans as protobuf (``ImprovementPlan``), with the progress computed now."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import improvement_plan_pb2 as pb

from pcm_benchmark.plan_kpis import LatestKpi
from pcm_benchmark.plans import Change, Progress, Stage
from pcm_benchmark.plans_book import StoredPlan

STAGES: dict[Stage, pb.PlanStage.ValueType] = {
    Stage.PLAN: pb.PLAN_STAGE_PLAN,
    Stage.DO: pb.PLAN_STAGE_DO,
    Stage.CHECK: pb.PLAN_STAGE_CHECK,
    Stage.ACT: pb.PLAN_STAGE_ACT,
    Stage.CLOSED: pb.PLAN_STAGE_CLOSED,
}
STAGE_OF = {number: stage for stage, number in STAGES.items()}
CHANGES: dict[Change, pb.PlanChange.ValueType] = {
    Change.REGISTERED: pb.PLAN_CHANGE_REGISTERED,
    Change.ADVANCED: pb.PLAN_CHANGE_ADVANCED,
    Change.COMMENTED: pb.PLAN_CHANGE_COMMENTED,
    Change.CLOSED: pb.PLAN_CHANGE_CLOSED,
}


def _stamp(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
    return stamp


def _midnight(day: dt.date, zone: ZoneInfo) -> Timestamp:
    return _stamp(dt.datetime.combine(day, dt.time(), zone))


def plan_message(
    plan: StoredPlan,
    progress: Progress,
    latest: LatestKpi | None,
    time_zone: str = "America/Lima",
) -> pb.ImprovementPlan:
    zone = ZoneInfo(time_zone)
    measured = pb.PlanProgress(
        has_value=progress.has_value,
        latest_value=progress.latest or 0.0,
        progress_pct=progress.progress_pct,
        expected_pct=progress.expected_pct,
        target_reached=progress.target_reached,
        off_track=progress.off_track,
        overdue=progress.overdue,
        tolerance_points=progress.tolerance_points,
        insufficient_sample=latest.insufficient_sample if latest is not None else False,
    )
    if latest is not None:
        measured.latest_period_start.CopyFrom(_midnight(latest.period_start, zone))
    return pb.ImprovementPlan(
        plan_id=plan.plan_id,
        entity_id=plan.entity_id,
        standard_code=plan.standard_code,
        criterion_id=plan.criterion_id,
        kpi_code=plan.kpi_code,
        baseline=plan.baseline,
        baseline_period_start=_midnight(plan.baseline_period, zone),
        target=plan.target,
        deadline=plan.deadline.isoformat(),
        owner_role=plan.owner_role,
        actions=[
            pb.PlanAction(
                description=a.description,
                start_date=a.start.isoformat(),
                due_date=a.due.isoformat(),
            )
            for a in plan.actions
        ],
        stage=STAGES[plan.stage],
        registered_on=plan.registered_on.isoformat(),
        registered_at=_stamp(plan.registered_at),
        updated_at=_stamp(plan.updated_at),
        progress=measured,
        history=[
            pb.PlanEvent(
                change=CHANGES[row.change],
                from_stage=STAGES[row.from_stage]
                if row.from_stage is not None
                else pb.PLAN_STAGE_UNSPECIFIED,
                to_stage=STAGES[row.to_stage],
                comment=row.comment,
                actor=row.actor.holder,
                actor_role=row.actor.role,
                actor_token_id=row.actor.token_id,
                changed_at=_stamp(row.changed_at),
            )
            for row in plan.history
        ],
        title=plan.title,
    )
