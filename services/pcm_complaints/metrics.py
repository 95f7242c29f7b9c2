"""Every metric of the complaints service and its worker, declared once here."""

from __future__ import annotations

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
OUTBOX_PENDING = Gauge(
    "pcm_complaints_outbox_pending", "Outbox rows committed but not yet published to Kafka."
)
OUTBOX_OLDEST = Gauge(
    "pcm_complaints_outbox_oldest_seconds",
    "Age of the oldest unpublished outbox row (0 when none).",
)
OUTBOX_PUBLISHED = Counter(
    "pcm_complaints_outbox_published_total", "Outbox rows published to Kafka (acknowledged)."
)
RELAY_ERRORS = Counter(
    "pcm_complaints_relay_errors_total",
    "Relay batches Kafka or PostgreSQL refused (retried).",
)
OVERDUE_JOB_SUCCESS = Gauge(
    "pcm_complaints_overdue_job_last_success_timestamp_seconds",
    "Unix time of the last completed overdue pass.",
)
LEADER = Gauge("pcm_complaints_leader", "1 on the worker replica holding the worker lock, else 0.")
