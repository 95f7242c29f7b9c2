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

# --- per-entity business figures (the worker's leader; ``entity_watch.py``) --------------------
# Labels are catalogue codes only (entity id, service id): never a name, never free text. A
# standby replica exports none of them (the leader's alone, as the business alert rules assume).
ENTITY_WAIT_P90 = Gauge(
    "pcm_entity_service_wait_p90_seconds",
    "WAIT_P90_S (all channels) of an entity's service in the hour in progress, from kpi_values "
    "(newest version); the hour before while the hour in progress has fewer served tickets "
    "than the KPI's min_sample and the hour before has enough.",
    ["entity", "service"],
)
ENTITY_WAIT_TARGET = Gauge(
    "pcm_entity_service_wait_target_seconds",
    "The service's waiting target for an all-channels p90: the most lenient of the targets the "
    "processor applies on the channels the service declares (services.csv channels; per "
    "channel wait_targets.csv, else target_wait_minutes). Exported beside each p90.",
    ["entity", "service"],
)
ENTITY_SATISFACTION_PCT = Gauge(
    "pcm_entity_satisfaction_pct",
    "SATISFACTION_PCT of an entity over the window (7d, 28d: today in Lima and the days before): "
    "summed DAY numerators (answers 4 or 5) over summed DAY denominators (valid answers) x 100.",
    ["entity", "window"],
)
ENTITY_SATISFACTION_ANSWERS = Gauge(
    "pcm_entity_satisfaction_answers",
    "Valid answers to the overall satisfaction question in the window (the summed "
    "denominators of pcm_entity_satisfaction_pct).",
    ["entity", "window"],
)
ENTITY_LAST_ACTIVITY = Gauge(
    "pcm_entity_last_activity_timestamp_seconds",
    "When the platform last received an event of the entity stored in a fact table (unix "
    "time; the complaints worker's own OVERDUE events excluded). Only entities seen since "
    "the worker started, looking back to the start of the previous month.",
    ["entity"],
)
PLANS_OFF_TRACK = Gauge(
    "pcm_benchmark_plans_off_track",
    "Open improvement plans of the entity flagged OFF_TRACK (plans.progress, on the KPI's "
    "value of this or last month); 0 for an entity with open plans none of which is.",
    ["entity"],
)
PLANS_OVERDUE = Gauge(
    "pcm_benchmark_plans_overdue",
    "Open improvement plans of the entity flagged OVERDUE (past the deadline, target not "
    "reached); 0 for an entity with open plans none of which is.",
    ["entity"],
)
