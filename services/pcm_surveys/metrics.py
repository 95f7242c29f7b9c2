"""Every metric of the surveys service and its worker, declared once here."""

from __future__ import annotations

from pcm_common.outbox import OutboxMetrics
from pcm_common.push import PushMetrics
from prometheus_client import Counter

METRICS = PushMetrics.declare("pcm_surveys")
COLLECTIONS_OUTBOX = OutboxMetrics.declare("pcm_surveys_collections")
RESPONSES_OUTBOX = OutboxMetrics.declare("pcm_surveys_responses")
STORE_ERRORS = Counter(
    "pcm_surveys_store_errors_total",
    "Calls answered UNAVAILABLE because the survey book (PostgreSQL) did not commit.",
)
BEYOND_OFFERED = Counter(
    "pcm_surveys_responses_beyond_offered_total",
    "Responses stored beyond the number of people offered the survey (flagged).",
    ["entity"],
)
