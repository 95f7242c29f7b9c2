"""Improvement plans on the entity page, read from the plan book (``pcm_benchmark.plans_book``,
PostgreSQL) when that module is installed: without it, the page says no plan is registered."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pcm_common.logging import get_logger
from pcm_common.settings import Settings

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
    """A lister over the plan book if the module exists (and its pool's closer)."""
    try:
        module: Any = importlib.import_module("pcm_benchmark.plans_book")
    except ImportError:
        return no_plan_book, lambda: None
    book_type = getattr(module, "PlanBook", None)
    if book_type is None or not hasattr(book_type, "list"):
        return no_plan_book, lambda: None
    from pcm_common.postgres.client import pool

    connections = pool(settings, max_size=4, application_name="pcm-benchmark-web")
    connections.open(wait=False)
    book = book_type(connections)

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
                str(getattr(p.stage, "value", p.stage)),
                float(p.baseline),
                float(p.target),
                p.registered_on,
                p.deadline,
            )
            for p in page.plans
        ]

    return listed, connections.close
