"""The metrics of a push service, declared once here and instantiated by each service under its
own prefix (``pcm_intake_...``, later ``pcm_complaints_...``): a service exports only its own
series, and every push service exports the same set, so one alert rule fits all of them."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets in seconds: gRPC batches are ms-scale, a broker outage up to its timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class PushMetrics:
    accepted: Counter
    rejected: Counter
    duplicates: Counter
    batch_seconds: Histogram
    produce_errors: Counter
    ledger_errors: Counter
    in_flight: Gauge
    auth_failures: Counter
    denied: Counter
    rate_limited: Counter
    undecodable: Counter

    @classmethod
    def declare(cls, prefix: str) -> PushMetrics:
        """Register the series ``<prefix>_*`` in the default registry (once per process)."""
        return cls(
            accepted=Counter(
                f"{prefix}_events_accepted_total",
                "Events acknowledged by Kafka and answered as accepted.",
                ["entity", "domain"],
            ),
            rejected=Counter(
                f"{prefix}_events_rejected_total",
                "Items refused by validation, per field and RejectionCode.",
                ["entity", "domain", "field", "code"],
            ),
            duplicates=Counter(
                f"{prefix}_events_duplicate_total",
                "Items whose event_id had already been accepted (stored once).",
                ["entity", "domain"],
            ),
            batch_seconds=Histogram(
                f"{prefix}_batch_seconds",
                "Time to validate, produce and get the broker's ack for one pushed batch.",
                ["method"],
                buckets=LATENCY_BUCKETS,
            ),
            produce_errors=Counter(
                f"{prefix}_kafka_produce_errors_total",
                "Batches that could not be acknowledged by Kafka (answered UNAVAILABLE).",
            ),
            ledger_errors=Counter(
                f"{prefix}_ledger_errors_total",
                "Calls answered UNAVAILABLE because the event-id ledger was unreachable.",
            ),
            in_flight=Gauge(
                f"{prefix}_requests_in_flight", "gRPC requests being processed.", ["method"]
            ),
            auth_failures=Counter(
                f"{prefix}_auth_failures_total",
                "Calls refused for authentication, per ErrorReason.",
                ["reason"],
            ),
            denied=Counter(
                f"{prefix}_permission_denied_total",
                "Calls refused by authorization, per ErrorReason.",
                ["reason"],
            ),
            rate_limited=Counter(
                f"{prefix}_rate_limited_total",
                "Calls refused by the per-entity rate limit.",
                ["entity"],
            ),
            undecodable=Counter(
                f"{prefix}_undecodable_requests_total",
                "Requests whose bytes are not the method's message (INVALID_ARGUMENT).",
                ["method"],
            ),
        )
