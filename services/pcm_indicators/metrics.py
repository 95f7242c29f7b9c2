"""Every metric of the indicators service and its worker, declared once here."""

from __future__ import annotations

from pcm_common.outbox import OutboxMetrics
from pcm_common.push import PushMetrics
from prometheus_client import Counter

METRICS = PushMetrics.declare("pcm_indicators")
"""The push kit's series, ``pcm_indicators_*``."""
OUTBOX = OutboxMetrics.declare("pcm_indicators")
STORE_ERRORS = Counter(
    "pcm_indicators_store_errors_total",
    "Calls answered UNAVAILABLE because the indicator book (PostgreSQL) did not commit.",
)
REVIEWS = Counter(
    "pcm_indicators_reviews_total", "Reviews by the oversight body, per verdict.", ["verdict"]
)
