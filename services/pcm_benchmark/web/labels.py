"""Spanish labels of the codes the results carry (levels, outcomes, operators, KPIs shown)."""

from __future__ import annotations

import datetime as dt

from pcm_benchmark.assessment import NONE, Outcome
from pcm_benchmark.national import OVERALL

LEVELS = {
    NONE: "Sin nivel",
    "BASICO": "Básico",
    "INTERMEDIO": "Intermedio",
    "AVANZADO": "Avanzado",
}
OUTCOMES = {
    Outcome.MET.value: "Cumple",
    Outcome.NOT_MET.value: "No cumple",
    Outcome.NO_EVIDENCE.value: "Sin evidencia",
    Outcome.INSUFFICIENT_SAMPLE.value: "Muestra insuficiente",
    Outcome.NOT_APPLICABLE.value: "No aplica",
}
OPS = {">=": "≥", "<=": "≤", "==": "="}
GOVERNMENT_LEVELS = {"NACIONAL": "Nacional", "REGIONAL": "Regional", "LOCAL": "Local"}
OVERALL_LABEL = "General (todos los estándares)"
MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)

TREND_KPIS = (
    "SERVED_WITHIN_TARGET_PCT",
    "ABANDONMENT_PCT",
    "SATISFACTION_PCT",
    "COMPLAINTS_ANSWERED_WITHIN_TERM_PCT",
    "DIGITAL_TAKEUP_PCT",
)
"""The KPIs whose monthly trend an entity page charts."""
OVERDUE_KPI = "COMPLAINTS_OPEN_OVERDUE"


def level(code: str) -> str:
    return LEVELS.get(code, code.replace("_", " ").capitalize())


def outcome(code: str) -> str:
    return OUTCOMES.get(code, code)


def standard_name(code: str, names: dict[str, str]) -> str:
    return OVERALL_LABEL if code == OVERALL else names.get(code, code)


def code_label(code: str) -> str:
    """A catalogue code without a name of its own (sectors): readable words."""
    return code.replace("_", " ").capitalize()


def month(day: dt.date) -> str:
    """'octubre de 2026' of a date."""
    return f"{MONTHS[day.month - 1]} de {day.year}"


def number(value: float | None, decimals: int = 1) -> str:
    """A number on screen, Peruvian style: decimal comma, thin groups ('1 250', '85,3')."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", " ")
    return f"{value:,.{decimals}f}".replace(",", " ").replace(".", ",")
