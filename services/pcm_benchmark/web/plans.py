"""Improvement plans on the entity page, read from the plan book (``pcm_benchmark.plans_book``,
PostgreSQL). A page waits at most ``PLANS_WAIT_S`` for it: when PostgreSQL does not answer, the
plans section says so and the rest of the page still shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pcm_common.logging import get_logger
from pcm_common.postgres.client import pool
from pcm_common.settings import Settings

from pcm_benchmark.plans_book import PlanBook

log = get_logger(__name__)
STAGES = {
    "PLAN": "Planificar",
    "DO": "Hacer",
    "CHECK": "Verificar",
    "ACT": "Actuar",
    "CLOSED": "Cerrado",
}
"""The plan's stage in its PDCA cycle (plans.Stage)."""
LISTED = 200
"""Plans shown per entity, newest registration first."""
PLANS_WAIT_S = 3.0
"""Longest wait for a plan-book connection before the page shows without its plans."""


@dataclass(frozen=True)
class Plan:
    plan_id: str
    title: str
    standard: str
    criterion_id: str
    kpi_code: str
    stage: str
    baseline: float
    target: float
    registered_on: dt.date
    deadline: dt.date

    @property
    def stage_label(self) -> str:
        return STAGES.get(self.stage, self.stage)


class PlansUnavailable(Exception):
    """The plan book did not answer (the page says so, the rest of it still shows)."""


PlanLister = Callable[[str], list[Plan] | None]
"""An entity's plans; None when there is no plan book at all."""


def no_plan_book(entity_id: str) -> list[Plan] | None:
    return None


def plan_book_lister(settings: Settings) -> tuple[PlanLister, Callable[[], None]]:
    """A lister over the plan book, and its pool's closer."""
    connections = pool(
        settings, max_size=4, timeout_s=PLANS_WAIT_S, application_name="pcm-benchmark-web"
    )
    connections.open(wait=False)
    book = PlanBook(connections)

    def listed(entity_id: str) -> list[Plan] | None:
        try:
            page = book.list(entity_id, "", None, False, LISTED, "")
        except Exception as error:  # psycopg's errors, a pool timeout: all mean "not now"
            log.warning("plan book unavailable", error=type(error).__name__)
            raise PlansUnavailable from error
        return [
            Plan(
                p.plan_id,
                p.title,
                p.standard_code,
                p.criterion_id,
                p.kpi_code,
                p.stage.value,
                float(p.baseline),
                float(p.target),
                p.registered_on,
                p.deadline,
            )
            for p in page.plans
        ]

    return listed, connections.close
