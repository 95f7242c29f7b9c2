"""Every metric of the complaints service and its worker, declared once here."""

from __future__ import annotations

from pcm_common.outbox import OutboxMetrics
from pcm_common.push import PushMetrics
from prometheus_client import Counter, Gauge

METRICS = PushMetrics.declare("pcm_complaints")
"""The push kit's series, ``pcm_complaints_*`` (same set as every push service)."""

STORE_ERRORS = Counter(
    "pcm_complaints_store_errors_total",
    "Calls answered UNAVAILABLE because the complaint book (PostgreSQL) did not commit.",
)

# --- the worker ---------------------------------------------------------------------------
OPEN = Gauge(
    "pcm_complaints_open", "Complaints whose answer term is running (not answered yet).", ["entity"]
)
OVERDUE = Gauge(
    "pcm_complaints_overdue",
    "Open complaints past their due date without an answer.",
    ["entity"],
)
MARKED_OVERDUE = Counter(
    "pcm_complaints_marked_overdue_total",
    "Complaints the overdue job marked past due (once per complaint).",
    ["entity"],
)
OUTBOX = OutboxMetrics.declare("pcm_complaints")
"""The relay's series: outbox backlog and age, published, errors, leader."""
OVERDUE_JOB_SUCCESS = Gauge(
    "pcm_complaints_overdue_job_last_success_timestamp_seconds",
    "Unix time of the last completed overdue pass.",
)
