"""Every metric of the benchmark service (``pcm-benchmark serve``), declared once here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Reads of a period's results are ms-scale; an export of every result up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "pcm_benchmark_requests_total",
    "Calls answered, per method and gRPC status code.",
    ["method", "code"],
)
REQUEST_SECONDS = Histogram(
    "pcm_benchmark_request_seconds",
    "Time to answer one call (a streamed export: until its last result).",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "pcm_benchmark_auth_failures_total",
    "Calls refused for authentication, per ErrorReason.",
    ["reason"],
)
DENIED = Counter(
    "pcm_benchmark_permission_denied_total",
    "Calls refused by authorization, per ErrorReason.",
    ["reason"],
)
UNDECODABLE = Counter(
    "pcm_benchmark_undecodable_requests_total",
    "Requests whose bytes are not the method's message (INVALID_ARGUMENT).",
    ["method"],
)
STORE_ERRORS = Counter(
    "pcm_benchmark_store_errors_total",
    "Calls answered UNAVAILABLE because a store did not answer, per store "
    "(clickhouse: results and KPIs; postgres: the improvement plans).",
    ["store"],
)
RESULTS_EXPORTED = Counter(
    "pcm_benchmark_results_exported_total", "Results streamed by ExportResults."
)
PLANS_REGISTERED = Counter(
    "pcm_benchmark_plans_registered_total",
    "Improvement plans registered, per standard.",
    ["standard"],
)
PLAN_CHANGES = Counter(
    "pcm_benchmark_plan_changes_total",
    "Changes of improvement plans after registration, per change (ADVANCED, COMMENTED, CLOSED) "
    "and the stage they left the plan in.",
    ["change", "stage"],
)
PLAN_MOVES_REFUSED = Counter(
    "pcm_benchmark_plan_moves_refused_total",
    "Stage moves and closings refused (FAILED_PRECONDITION: not a PDCA step).",
)

# --- the refresh worker (``pcm-benchmark work``) ------------------------------------------------
REFRESHES = Counter(
    "pcm_benchmark_refreshes_total",
    "Months reassessed by the worker, per reason (kpis: their KPIs changed; periodic: the "
    "full refresh that picks up indicator reviews).",
    ["reason"],
)
REFRESH_ERRORS = Counter(
    "pcm_benchmark_refresh_errors_total", "Refresh passes that failed (retried next pass)."
)
REFRESH_SECONDS = Histogram(
    "pcm_benchmark_refresh_seconds",
    "Time to reassess one month: read the evidence, assess, rank, write, publish.",
    buckets=LATENCY_BUCKETS,
)
LAST_REFRESH = Gauge(
    "pcm_benchmark_last_refresh_timestamp_seconds",
    "When the worker last finished a pass without error (unix time).",
)
WORKER_LEADER = Gauge(
    "pcm_benchmark_worker_leader",
    "1 on the worker replica holding the refresh lock (it alone refreshes), else 0.",
)
RESULTS_PUBLISHED = Counter(
    "pcm_benchmark_results_published_total",
    "BenchmarkResult events published because a level, score or rank changed.",
)
CATALOGUES_PUBLISHED = Counter(
    "pcm_benchmark_catalogues_published_total",
    "Catalogue versions newly published through the CatalogueService.",
)
