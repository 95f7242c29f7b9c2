"""Every Prometheus metric of the platform, declared in one place.

Alert rules (deploy/prometheus/rules/) and dashboards refer to these names; keeping them here
makes a rename visible in one diff. Services import the objects they update.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Latency buckets in seconds: gRPC batches are ms-scale, ClickHouse inserts up to seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- intake services (intake, complaints, surveys, indicators) ---------------------------------
INTAKE_EVENTS_ACCEPTED = Counter(
    "pcm_intake_events_accepted_total",
    "Events acknowledged by Kafka and answered as accepted.",
    ["entity", "domain"],
)
INTAKE_EVENTS_REJECTED = Counter(
    "pcm_intake_events_rejected_total",
    "Items refused by validation, per reason (field:reason class).",
    ["entity", "reason"],
)
INTAKE_EVENTS_DUPLICATE = Counter(
    "pcm_intake_events_duplicate_total",
    "Items whose event_id was already accepted (stored once).",
    ["entity", "domain"],
)
INTAKE_BATCH_SECONDS = Histogram(
    "pcm_intake_batch_seconds",
    "Time to validate, produce and get the broker's ack for one pushed batch.",
    ["method"],
    buckets=_LATENCY_BUCKETS,
)
INTAKE_KAFKA_PRODUCE_ERRORS = Counter(
    "pcm_intake_kafka_produce_errors_total",
    "Batches that could not be acknowledged by Kafka (answered UNAVAILABLE).",
)
INTAKE_REQUESTS_IN_FLIGHT = Gauge(
    "pcm_intake_requests_in_flight", "gRPC requests being processed.", ["method"]
)
INTAKE_AUTH_FAILURES = Counter(
    "pcm_intake_auth_failures_total", "Calls refused for authentication.", ["reason"]
)
INTAKE_RATE_LIMITED = Counter(
    "pcm_intake_rate_limited_total", "Calls refused by the per-entity rate limit.", ["entity"]
)

# --- stream processors -------------------------------------------------------------------------
PROCESSOR_EVENTS = Counter("pcm_processor_events_total", "Events written to ClickHouse.", ["topic"])
PROCESSOR_BATCH_SIZE = Histogram(
    "pcm_processor_batch_size",
    "Events per columnar insert.",
    buckets=(1, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000),
)
PROCESSOR_INSERT_SECONDS = Histogram(
    "pcm_processor_insert_seconds",
    "ClickHouse insert latency per batch.",
    ["table"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSOR_INSERT_RETRIES = Counter(
    "pcm_processor_insert_retries_total", "Insert attempts that failed and were retried."
)
PROCESSOR_DEAD_LETTER = Counter(
    "pcm_processor_dead_letter_total",
    "Poison messages sent to the dead-letter topic.",
    ["topic", "reason"],
)
PROCESSOR_CONSUMER_LAG = Gauge(
    "pcm_processor_consumer_lag",
    "Messages between the committed offset and the end of the partition.",
    ["topic", "partition"],
)
PROCESSOR_FRESHNESS_SECONDS = Gauge(
    "pcm_processor_freshness_seconds",
    "Now minus the newest event time written to ClickHouse.",
)
PROCESSOR_KPI_ROWS = Counter(
    "pcm_processor_kpi_rows_total", "KPI rows recomputed and written.", ["grain"]
)
PROCESSOR_KPI_SECONDS = Histogram(
    "pcm_processor_kpi_recompute_seconds",
    "Time to recompute the touched KPI periods of one grain from the facts (one flush).",
    ["domain", "grain"],
    buckets=_LATENCY_BUCKETS,
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose the default registry on http://host:port/metrics from a daemon thread."""
    start_http_server(port, addr=host)
